package proxy

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

func TestShutdownDrainsWaitingClientsPromptly(t *testing.T) {
	rs := redistest.Start(t, "--enable-debug-command", "yes")
	fp := startFaultProxy(t, rs, rs.Addr, nil)
	ctx := ctxT(t)
	blocked := fp.raw(t)
	blocked.send("BLPOP drain:forever 0\r\n")
	waitRedisBlocked(t, fp.testProxy)
	sub := fp.raw(t)
	sub.send("SUBSCRIBE news\r\n")
	if v := sub.reply(); len(v.([]any)) != 3 {
		t.Fatalf("SUBSCRIBE = %#v", v)
	}
	mon := fp.raw(t)
	mon.send("MONITOR\r\n")
	if v := mon.reply(); v != "OK" {
		t.Fatalf("MONITOR = %#v", v)
	}
	// MONITOR's slot completes when its marker's reply is in (see
	// sendStreaming): then only BLPOP's reply is awaited.
	pollUntil(t, 10*time.Second, "MONITOR's slot complete", func() bool { return awaitedReplies(fp.Server) == 1 })
	slow := fp.raw(t)
	slow.send("DEBUG SLEEP 0.3\r\n")
	// BLPOP's and DEBUG SLEEP's replies are awaited: both were read and sent.
	pollUntil(t, 10*time.Second, "DEBUG SLEEP sent", func() bool { return awaitedReplies(fp.Server) == 2 })

	const timeout = 20 * time.Second
	start := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		shut <- fp.Server.Shutdown(ctx)
	}()
	if v := slow.reply(); v != "OK" {
		t.Fatalf("the reply in flight: DEBUG SLEEP = %#v, want OK", v)
	}
	if v := blocked.reply(); v != nil {
		t.Fatalf("BLPOP 0 = %#v, want the nil of a timeout (unblocked, nothing popped)", v)
	}
	slow.expectClosed()
	blocked.expectClosed()
	for _, c := range []*rawConn{sub, mon} { // MONITOR may show the drain's own commands first
		if _, err := io.Copy(io.Discard, c.r); err != nil {
			t.Fatalf("streaming client not closed: %v", err)
		}
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if d := time.Since(start); d > timeout/4 {
		t.Fatalf("drain took %s, want well under the %s timeout", d, timeout)
	}
	t.Logf("drained a blocked client, a subscriber, MONITOR and a slow command in %s", time.Since(start))
	if err := <-fp.served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	fp.served <- ErrServerClosed // for the cleanup's stop
	if n, err := fp.direct(t).LPush(ctx, "drain:forever", "x").Result(); err != nil || n != 1 {
		t.Fatalf("LPUSH after drain = %d, %v: the unblocked BLPOP must not take an element", n, err)
	}
}

// awaitedReplies counts the replies srv's sessions are waiting for.
func awaitedReplies(srv *Server) int {
	n := 0
	for _, sess := range srv.liveSessions() {
		n += sess.out.pending()
	}
	return n
}
