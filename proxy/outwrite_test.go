package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

func TestOutboxWritesDirectly(t *testing.T) {
	t.Run("a held burst of replies leaves in one write at Flush", func(t *testing.T) {
		server, client := tcpPair(t)
		o := newOutbox(0, 0, 0)
		var writes, bytesOut atomic.Int64
		o.start(server, time.Hour, func(n int) { writes.Add(1); bytesOut.Add(int64(n)) })
		o.Hold()
		var want []byte
		for i := range 16 {
			seq, _ := o.reserve(100, slotMeta{}, nil, nil)
			reply := fmt.Appendf(nil, "$1\r\n%d\r\n", i%10)
			o.Deliver(seq, reply, true)
			want = append(want, reply...)
		}
		if writes.Load() != 0 {
			t.Fatalf("%d writes while held", writes.Load())
		}
		o.Flush()
		if writes.Load() != 1 || bytesOut.Load() != int64(len(want)) {
			t.Fatalf("after Flush: %d writes, %d bytes; want 1 write of %d bytes", writes.Load(), bytesOut.Load(), len(want))
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("client read %q, %v; want %q", got, err, want)
		}
	})
	t.Run("a client that does not read never blocks the deliverer, and gets every byte in order once it reads", func(t *testing.T) {
		server, client := tcpPair(t)
		_ = server.SetWriteBuffer(16 << 10)
		o := newOutbox(0, 0, 0)
		o.start(server, time.Hour, nil)
		var want bytes.Buffer
		delivered := make(chan struct{})
		go func() { // far more than the socket buffers hold
			defer close(delivered)
			for i := range 64 {
				seq, _ := o.reserve(100, slotMeta{}, nil, nil)
				reply := append(fmt.Appendf(nil, "$%d\r\n", 64<<10), bytes.Repeat([]byte{byte('a' + i%26)}, 64<<10)...)
				reply = append(reply, "\r\n"...)
				want.Write(reply)
				o.Deliver(seq, reply, true)
			}
		}()
		select {
		case <-delivered:
		case <-time.After(20 * time.Second):
			t.Fatal("Deliver blocked on a client that does not read")
		}
		o.mu.Lock()
		handedOff := o.loop
		o.mu.Unlock()
		if !handedOff {
			t.Fatal("the socket took everything: no writer goroutine was needed, nothing tested")
		}
		o.closeWhenDone()
		got, err := io.ReadAll(client)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("read %d bytes (%v), want the %d delivered, in order", len(got), err, want.Len())
		}
		<-o.finished
	})
	t.Run("onDone runs with the outbox unlocked", func(t *testing.T) {
		server, _ := tcpPair(t)
		o := newOutbox(0, 0, 0)
		o.start(server, time.Hour, nil)
		unlocked := make(chan bool, 1)
		o.onDone = func(*slot) {
			ok := o.mu.TryLock()
			if ok {
				o.mu.Unlock()
			}
			unlocked <- ok
		}
		seq, _ := o.reserve(100, slotMeta{}, []byte("GET ?"), []byte("k"))
		o.Deliver(seq, []byte("+OK\r\n"), true)
		if !<-unlocked {
			t.Fatal("onDone ran with the outbox lock held")
		}
	})
}

func TestIdleClientsHaveOneGoroutine(t *testing.T) {
	tp := startProxy(t, nil)
	const clients = 50
	warm := tp.raw(t) // the shared upstream connections and their goroutines
	warm.send("PING\r\n")
	expectLines(t, warm, "+PONG")
	before := runtime.NumGoroutine()
	for range clients {
		rc := tp.raw(t)
		rc.send("PING\r\nGET idle\r\n")
		expectLines(t, rc, "+PONG", "$-1")
	}
	// A writer goroutine started for a full socket exits once it has
	// written; none was needed here, so none should be found.
	if n := runtime.NumGoroutine() - before; n > clients+clients/5 {
		t.Fatalf("%d goroutines for %d idle clients, want about one each", n, clients)
	}
}

func TestClientThatStopsReadingGetsEveryReplyLater(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *pool.Config) { c.Client.OutputBufferLimit = 0 })
	ctx := ctxT(t)
	value := strings.Repeat("v", 1<<20)
	if err := tp.direct(t).Set(ctx, "big", value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	ld := startLoad(t, tp.Addr, 2) // other clients, on the same upstream connections
	rc := tp.raw(t)
	const n = 24
	rc.send(strings.Repeat("GET big\r\n", n))
	s := sessionOf(t, tp.Server, rc.LocalAddr().String())
	pollUntil(t, 30*time.Second, "every reply in the outbox or the socket", func() bool { return s.out.pending() == 0 })
	served := ld.v.oks.Load()
	pollUntil(t, 30*time.Second, "the other clients served meanwhile", func() bool { return ld.v.oks.Load() > served+100 })
	want := fmt.Sprintf("$%d\r\n%s\r\n", len(value), value)
	for i := range n {
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(rc.r, buf); err != nil || string(buf) != want {
			t.Fatalf("reply %d: %v, or not the value", i, err)
		}
	}
	checkLoad(t, ld)
}
