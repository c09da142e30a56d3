package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// bulkHeaderSET is the start of "SET key <n-byte value>": the header of the
// value and its first bytes, all a single small write.
func bulkHeaderSET(n int) []byte {
	return []byte(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$7\r\nbig:key\r\n$%d\r\n%s", n, strings.Repeat("v", 1000)))
}

// sendAndDrain writes req to addr (in the background: the server may close
// before reading it all) and returns every byte received until the server
// closes the connection.
func sendAndDrain(t *testing.T, addr string, req []byte) string {
	t.Helper()
	c := dialFor(t, addr)
	go func() { _, _ = c.Write(req) }()
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after %q", got)
		}
		if err != nil {
			return string(got) // EOF, or a reset while the request was still arriving
		}
	}
}

// checkLoad stops ld and fails the test unless every one of its commands
// succeeded with its own reply.
func checkLoad(t *testing.T, ld *load) {
	t.Helper()
	ld.stop()
	ld.v.check(t)
	if n := ld.v.errs.Load(); n > 0 {
		t.Fatalf("%d commands of other clients failed", n)
	}
	t.Logf("%d commands of other clients succeeded meanwhile", ld.v.oks.Load())
}

func TestOversizedArgumentFailsOnlyItsClient(t *testing.T) {
	t.Run("a bulk over Redis's proto-max-bulk-len gets Redis's own error and closes only its client", func(t *testing.T) {
		tp := startProxyFor(t, redistest.Start(t, "--proto-max-bulk-len", "1mb"), nil)
		req := bulkHeaderSET(2 << 20)
		want := sendAndDrain(t, tp.Redis.Addr, req)
		if want != "-ERR Protocol error: invalid bulk length\r\n" {
			t.Fatalf("Redis itself answered %q", want)
		}
		ld := startLoad(t, tp.Addr, 4)
		pollUntil(t, 10*time.Second, "load running", func() bool { return ld.v.oks.Load() > 200 })
		for range 5 {
			if got := sendAndDrain(t, tp.Addr, req); got != want {
				t.Fatalf("through respguard: %q, want %q", got, want)
			}
			// A real client sending the whole 2 MB value fails too (the
			// reply or a reset, as directly), and only it.
			big := tp.client(t, 2)
			if err := big.Set(context.Background(), "big:key", strings.Repeat("v", 2<<20), 0).Err(); err == nil {
				t.Fatal("a 2 MB SET over a 1 MB proto-max-bulk-len succeeded")
			}
			big.Close()
		}
		checkLoad(t, ld)
	})
	t.Run("an argument past Redis's client-query-buffer-limit closes only its client, without a reply, as Redis does", func(t *testing.T) {
		tp := startProxyFor(t, redistest.Start(t, "--client-query-buffer-limit", "1mb"), nil)
		req := append(bulkHeaderSET(3<<19), strings.Repeat("v", 3<<19-1000)+"\r\n"...)
		if got := sendAndDrain(t, tp.Redis.Addr, req); got != "" {
			t.Fatalf("Redis itself answered %q", got)
		}
		ld := startLoad(t, tp.Addr, 4)
		pollUntil(t, 10*time.Second, "load running", func() bool { return ld.v.oks.Load() > 200 })
		for range 5 {
			if got := sendAndDrain(t, tp.Addr, req); got != "" {
				t.Fatalf("through respguard: %q, want a close without reply", got)
			}
		}
		checkLoad(t, ld)
	})
	t.Run("a CONFIG SET lowering Redis's limit applies once respguard reconnects", func(t *testing.T) {
		tp := startProxyFor(t, redistest.Start(t, "--proto-max-bulk-len", "4mb"), nil)
		ctx := ctxT(t)
		direct := tp.direct(t)
		c := tp.client(t, 2)
		if err := c.Set(ctx, "big:key", strings.Repeat("v", 2<<20), 0).Err(); err != nil {
			t.Fatalf("2 MB SET under a 4 MB proto-max-bulk-len: %v", err)
		}
		if err := direct.ConfigSet(ctx, "proto-max-bulk-len", "1mb").Err(); err != nil {
			t.Fatal(err)
		}
		if err := direct.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, 10*time.Second, "respguard to reconnect", func() bool { return c.Ping(ctx).Err() == nil })
		if got := sendAndDrain(t, tp.Addr, bulkHeaderSET(2<<20)); got != "-ERR Protocol error: invalid bulk length\r\n" {
			t.Fatalf("2 MB SET after lowering proto-max-bulk-len to 1mb: %q", got)
		}
	})
}
