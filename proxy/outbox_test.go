package proxy

import (
	"testing"
	"time"
)

func TestOutboxLimits(t *testing.T) {
	t.Run("the hard limit closes at once", func(t *testing.T) {
		o := newOutbox(10, 0, 0)
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 11), false)
		if !o.isOverflow() {
			t.Fatal("11 bytes over a 10-byte hard limit did not overflow")
		}
	})
	t.Run("the soft limit closes only when exceeded for its whole time", func(t *testing.T) {
		o := newOutbox(0, 10, time.Hour)
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 11), false)
		o.Deliver(seq, make([]byte, 11), false)
		if o.isOverflow() {
			t.Fatal("closed before the soft limit's time ran out")
		}
		o = newOutbox(0, 10, 0)
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
		o := newOutbox(0, 10, 0)
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(seq, make([]byte, 11), false)
		o.mu.Lock()
		o.buffered = 0 // as if the writer had sent everything
		o.mu.Unlock()
		o.Deliver(seq, make([]byte, 1), false)
		if o.isOverflow() || !o.overSoft.IsZero() {
			t.Fatal("the soft limit clock survived a drop below the limit")
		}
	})
}
