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
func tcpPair(t testing.TB) (server, client *net.TCPConn) {
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
		o := newOutbox(&outputLimits{writeTimeout: time.Hour})
		var writes, bytesOut atomic.Int64
		o.start(server, &funcOwner{conn: server, bytes: func(n int) { writes.Add(1); bytesOut.Add(int64(n)) }})
		var want []byte
		seqs := make([]uint64, 16) // a pipelining client's commands
		for i := range seqs {
			seqs[i], _ = o.reserve(100, slotMeta{}, nil, nil)
		}
		for i, seq := range seqs {
			reply := fmt.Appendf(nil, "$1\r\n%d\r\n", i%10)
			if i == 0 {
				if !o.HoldDeliver(seq, reply, true) {
					t.Fatal("HoldDeliver declined the hold with 15 replies awaited")
				}
			} else {
				o.Deliver(seq, reply, true)
			}
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
	t.Run("a reply that leaves no other awaited is written at once, without a hold to flush", func(t *testing.T) {
		server, client := tcpPair(t)
		o := newOutbox(&outputLimits{writeTimeout: time.Hour})
		var writes atomic.Int64
		o.start(server, &funcOwner{conn: server, bytes: func(int) { writes.Add(1) }})
		seq, _ := o.reserve(100, slotMeta{}, nil, nil)
		if held := o.HoldDeliver(seq, []byte("+a\r\n"), true); held || writes.Load() != 1 {
			t.Fatalf("the only awaited reply: held %v, %d writes; want no hold and one write", held, writes.Load())
		}
		first, _ := o.reserve(100, slotMeta{}, nil, nil)
		second, _ := o.reserve(100, slotMeta{}, nil, nil)
		if !o.HoldDeliver(second, []byte("+c\r\n"), true) {
			t.Fatal("not held while an earlier reply is awaited")
		}
		o.Deliver(first, []byte("+b\r\n"), true)
		if writes.Load() != 1 {
			t.Fatal("written while held")
		}
		o.Flush()
		got := make([]byte, 12)
		if _, err := io.ReadFull(client, got); err != nil || string(got) != "+a\r\n+b\r\n+c\r\n" || writes.Load() != 2 {
			t.Fatalf("client read %q, %v in %d writes; want the three replies in order in two", got, err, writes.Load())
		}
		o.mu.Lock()
		holds := o.holds
		o.mu.Unlock()
		if holds != 0 {
			t.Fatalf("%d holds left", holds)
		}
	})
	t.Run("output asked to end ends when its last slot completes with nothing to write", func(t *testing.T) {
		server, _ := tcpPair(t)
		o := newOutbox(&outputLimits{writeTimeout: time.Hour})
		var reported atomic.Int64
		o.start(server, &funcOwner{conn: server, done: func(*slot) { reported.Add(1) }})
		seq, _ := o.reserve(100, slotMeta{mute: true}, nil, nil) // under CLIENT REPLY OFF
		o.closeWhenDone()
		o.Deliver(seq, []byte("+OK\r\n"), true)
		select {
		case <-o.done():
		case <-time.After(10 * time.Second):
			t.Fatal("the output never ended")
		}
		if reported.Load() != 1 {
			t.Fatalf("%d slots reported, want the completed one", reported.Load())
		}
	})
	t.Run("a client that does not read never blocks the deliverer, and gets every byte in order once it reads", func(t *testing.T) {
		server, client := tcpPair(t)
		_ = server.SetWriteBuffer(16 << 10)
		o := newOutbox(&outputLimits{writeTimeout: time.Hour})
		o.start(server, nil)
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
		<-o.done()
	})
	t.Run("completed slots are reported with the outbox unlocked", func(t *testing.T) {
		server, _ := tcpPair(t)
		o := newOutbox(&outputLimits{writeTimeout: time.Hour})
		unlocked := make(chan bool, 1)
		o.start(server, &funcOwner{conn: server, done: func(*slot) {
			ok := o.mu.TryLock()
			if ok {
				o.mu.Unlock()
			}
			unlocked <- ok
		}})
		seq, _ := o.reserve(100, slotMeta{}, []byte("GET ?"), []byte("k"))
		o.Deliver(seq, []byte("+OK\r\n"), true)
		if !<-unlocked {
			t.Fatal("a slot was reported with the outbox lock held")
		}
	})
}

// Each client that has sent a command and waits for its next has its
// reader goroutine and the coroutine of its held read (see heldRead), until
// it parks; a writer goroutine started for a full socket exits once it has
// written, and none was needed here.
func TestWaitingClientsHaveNoWriterGoroutine(t *testing.T) {
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
	if n := runtime.NumGoroutine() - before; n > 2*clients+clients/5 {
		t.Fatalf("%d goroutines for %d waiting clients, want about two each (reader, held read)", n, clients)
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

// replyClient is one client of a reply-path benchmark or count: its outbox,
// writing to one end of a loopback connection, and the other end.
// funcOwner is an outbox's owner made of functions; nil ones do nothing.
// The output's end closes conn.
type funcOwner struct {
	conn  net.Conn
	done  func(*slot)
	bytes func(int)
}

func (f *funcOwner) slotDone(sl *slot) {
	if f.done != nil {
		f.done(sl)
	}
}

func (f *funcOwner) bytesOut(n int) {
	if f.bytes != nil {
		f.bytes(n)
	}
}

func (f *funcOwner) outputOver() { _ = f.conn.Close() }

type replyClient struct {
	o    *outbox
	peer net.Conn
}

// newReplyClients returns n clients whose completed slots onDone observes.
func newReplyClients(tb testing.TB, n int, onDone func(*slot)) []replyClient {
	cs := make([]replyClient, n)
	for i := range cs {
		server, client := tcpPair(tb)
		o := newOutbox(&outputLimits{writeTimeout: time.Hour})
		o.start(server, &funcOwner{conn: server, done: onDone})
		cs[i] = replyClient{o: o, peer: client}
	}
	return cs
}

// replyBurst runs one upstream read burst of replies, one per client in
// turn, as a pipe's reader delivers them, then reads them on the client side.
// The clients' command slots are reserved first, as their sessions would.
func replyBurst(tb testing.TB, cs []replyClient, perClient int, reply []byte, read []byte) {
	seqs := make([]uint64, 0, len(cs)*perClient)
	for _, c := range cs {
		for range perClient {
			seq, _ := c.o.reserve(1<<20, slotMeta{start: time.Now(), name: "get", upstream: true}, []byte("GET ?"), []byte("key"))
			seqs = append(seqs, seq)
		}
	}
	held := make([]*outbox, 0, len(cs))
	for i, c := range cs {
		for j := range perClient {
			switch {
			case j > 0:
				c.o.Deliver(seqs[i*perClient+j], reply, true)
			case c.o.HoldDeliver(seqs[i*perClient+j], reply, true):
				held = append(held, c.o)
			}
		}
	}
	for _, o := range held {
		o.Flush()
	}
	for _, c := range cs {
		if _, err := io.ReadFull(c.peer, read[:perClient*len(reply)]); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkReplyBurst measures the reply path as an upstream connection's
// reader drives it, per reply: one burst delivers one reply to each client
// (as at -P 1), holding each client with its delivery and flushing it at
// the burst's end, which writes the reply to the client's socket without
// blocking and observes its slot (guard detectors, telemetry with 1%
// tracing). The client side reads its reply after each burst. Built with
// -tags lockcount it also reports outbox lock acquisitions per reply.
func BenchmarkReplyBurst(b *testing.B) {
	reply := []byte("$3\r\nbar\r\n")
	for _, clients := range []int{1, 100} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			cs := newReplyClients(b, clients, newObservedSession(b).slotDone)
			read := make([]byte, len(reply))
			b.ReportAllocs()
			locks := outboxLocks()
			for b.Loop() {
				replyBurst(b, cs, 1, reply, read)
			}
			replies := float64(b.N * clients)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/replies, "ns/reply")
			if locks >= 0 {
				b.ReportMetric(float64(outboxLocks()-locks)/replies, "locks/reply")
			}
		})
	}
}

func TestReplyPathLocks(t *testing.T) {
	if outboxLocks() < 0 {
		t.Skip("counts outbox locks only when built with -tags lockcount")
	}
	reply := []byte("+OK\r\n")
	read := make([]byte, 16*len(reply))
	for _, tc := range []struct {
		name      string
		perClient int
		want      int64 // per client and burst, the session's reservations included
	}{
		{"a reply alone in its burst takes its outbox's lock twice, besides its reservation", 1, 1 + 2},
		{"a burst of 16 replies to one client takes it three times and once per further reply", 16, 16 + 3 + 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newReplyClients(t, 4, func(*slot) {})
			before := outboxLocks()
			replyBurst(t, cs, tc.perClient, reply, read)
			if got := (outboxLocks() - before) / int64(len(cs)); got != tc.want {
				t.Fatalf("%d outbox locks per client and burst, want %d", got, tc.want)
			}
		})
	}
}
