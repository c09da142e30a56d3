package proxy

import (
	"net"
	"testing"
	"time"
)

func TestOutboxLimits(t *testing.T) {
	t.Run("the hard limit closes at once", func(t *testing.T) {
		o := newOutbox(&outputLimits{hard: 10})
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 11), false)
		if !o.isOverflow() {
			t.Fatal("11 bytes over a 10-byte hard limit did not overflow")
		}
	})
	t.Run("the soft limit closes only when exceeded for its whole time", func(t *testing.T) {
		o := newOutbox(&outputLimits{soft: 10, softFor: time.Hour})
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 11), false)
		o.Deliver(seq, make([]byte, 11), false)
		if o.isOverflow() {
			t.Fatal("closed before the soft limit's time ran out")
		}
		o = newOutbox(&outputLimits{soft: 10})
		seq, _ = o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 11), false) // starts the clock
		if o.isOverflow() {
			t.Fatal("closed on first crossing the soft limit")
		}
		o.Deliver(seq, make([]byte, 1), false) // still above it, time (0) is up
		if !o.isOverflow() {
			t.Fatal("still above the soft limit after its time: not closed")
		}
	})
	t.Run("dropping below the soft limit resets its clock", func(t *testing.T) {
		o := newOutbox(&outputLimits{soft: 4096})
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 5000), false)
		o.mu.Lock()
		o.ready = replyBuf{} // as if the writer had sent everything
		o.mu.Unlock()
		o.Deliver(seq, make([]byte, 1), false)
		if o.isOverflow() || o.overSoft != 0 {
			t.Fatal("the soft limit clock survived a drop below the limit")
		}
	})
}

func TestOutboxCountsMemoryHeld(t *testing.T) {
	t.Run("a batch blocked in a write to a client that does not read still counts, and overflow cuts the write short", func(t *testing.T) {
		const limit = 1 << 20
		o := newOutbox(&outputLimits{hard: limit, writeTimeout: time.Hour})
		client, peer := net.Pipe() // peer never reads: every write blocks
		defer peer.Close()
		o.start(client, nil) // net.Pipe has no descriptor: a writer goroutine writes
		done := o.done()
		seq, _ := o.reserve(1<<20, slotMeta{}, nil, nil)
		chunk := make([]byte, 16<<10)
		o.Deliver(seq, chunk, false)
		pollUntil(t, 5*time.Second, "the writer to take the first batch", func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return o.writing > 0
		})
		for i := 0; !o.isOverflow(); i++ {
			if i > 2*limit/len(chunk) {
				t.Fatal("twice the limit delivered without overflow")
			}
			o.Deliver(seq, chunk, false)
		}
		if peak := o.peakHeld(); peak > limit+replyChunk+len(chunk) {
			t.Fatalf("held %d bytes at peak under a %d-byte limit", peak, limit)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the blocked write was not cut short by the overflow")
		}
	})
}
