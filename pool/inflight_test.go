package pool

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// gate is a Target that holds the pipe's reader inside the first partial
// delivery (a reply longer than the reader's buffer comes in parts) until
// open is closed, and records what InFlight said when the last part came.
type gate struct {
	pipe    *Pipe
	stalled chan struct{} // closed when the reader is held mid-reply
	open    chan struct{}
	got     []byte
	lastIn  int           // InFlight when the last part was delivered
	done    chan struct{} // closed after the last part
	aborted chan struct{}
}

func newGate() *gate {
	return &gate{stalled: make(chan struct{}), open: make(chan struct{}), done: make(chan struct{}), aborted: make(chan struct{})}
}

func (g *gate) Deliver(_ uint64, p []byte, last bool) {
	g.got = append(g.got, p...)
	if last {
		g.lastIn = g.pipe.InFlight()
		close(g.done)
		return
	}
	select {
	case <-g.stalled:
	default:
		close(g.stalled)
		<-g.open
	}
}

func (g *gate) DeliverPush([]byte, bool) {}
func (g *gate) Abort(error)              { close(g.aborted) }

// wait waits for ch, failing the test if the reply was cut off instead.
func (g *gate) wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-g.aborted:
		t.Fatalf("the reply was cut off before %s", what)
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s", what)
	}
}

// stalledPipe returns a pipe whose reader is held in the middle of a long
// reply, to GET of the value it returns (see gate): Redis has answered
// nothing else written on it.
func stalledPipe(t *testing.T, srv *redistest.Server) (*Pipe, *gate, string) {
	t.Helper()
	value := strings.Repeat("v", 1<<20) // many times the reader's buffer
	if _, err := redistest.Do(srv.Addr, "SET", "big", value); err != nil {
		t.Fatal(err)
	}
	p, err := Dial(context.Background(), Config{Address: srv.Addr}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	g := newGate()
	g.pipe = p
	if err := p.Send(g, 0, nil, bytesArgs([]string{"GET", "big"})); err != nil {
		t.Fatal(err)
	}
	g.wait(t, g.stalled, "first part of the reply")
	return p, g, value
}

// TestAReplyIsInFlightUntilReadWhole: a reply whose first bytes have come
// but whose rest is still to be read keeps its connection in flight: not
// reusable, not closed as idle (which would cut the reply off and, on a
// client's dedicated connection, close the client). Once read whole it is
// not in flight any more, already when its last bytes are delivered.
func TestAReplyIsInFlightUntilReadWhole(t *testing.T) {
	srv := redistest.Start(t)
	p, g, value := stalledPipe(t, srv)
	if n := p.InFlight(); n != 1 {
		t.Errorf("in flight = %d while the reply is being read, want 1", n)
	}
	if p.Reusable() {
		t.Error("a connection in the middle of a reply is reusable")
	}
	p.closeIfIdle()
	if err := p.Err(); err != nil {
		t.Errorf("closed as idle in the middle of a reply: %v", err)
	}
	close(g.open)
	g.wait(t, g.done, "whole reply")
	if want := "$1048576\r\n" + value + "\r\n"; string(g.got) != want {
		t.Fatalf("got %d bytes, want %d", len(g.got), len(want))
	}
	if g.lastIn != 0 {
		t.Errorf("in flight = %d when the last bytes were delivered, want 0", g.lastIn)
	}
}
