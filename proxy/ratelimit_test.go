package proxy

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestAuthLimiter(t *testing.T) {
	t.Run("a nil limiter allows everything", func(t *testing.T) {
		var l *authLimiter
		l.fail("10.0.0.1")
		if ok, _ := l.allow("10.0.0.1"); !ok {
			t.Fatal("nil limiter refused")
		}
	})
	t.Run("the burst is spent, then one attempt comes back per minute/limit", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(6, clock.now) // one attempt back every 10 s
		for range 6 {
			if ok, _ := l.allow("10.0.0.1"); !ok {
				t.Fatal("refused within the burst")
			}
			l.fail("10.0.0.1")
		}
		if ok, first := l.allow("10.0.0.1"); ok || !first {
			t.Fatalf("allow = %v, first = %v; want a first refusal", ok, first)
		}
		if _, first := l.allow("10.0.0.1"); first {
			t.Fatal("the second refusal of a spell was reported as first")
		}
		clock.t = clock.t.Add(9 * time.Second)
		if ok, _ := l.allow("10.0.0.1"); ok {
			t.Fatal("allowed before an attempt came back")
		}
		clock.t = clock.t.Add(time.Second)
		if ok, _ := l.allow("10.0.0.1"); !ok {
			t.Fatal("still refused after 10 s")
		}
		if ok, _ := l.allow("10.0.0.2"); !ok {
			t.Fatal("another address was refused")
		}
	})
	t.Run("memory stays bounded: refilled buckets are swept and the map is capped", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(10, clock.now)
		for i := range maxTrackedIPs + 100 {
			l.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255))
		}
		if n := len(l.buckets); n > maxTrackedIPs {
			t.Fatalf("%d buckets, cap %d", n, maxTrackedIPs)
		}
		clock.t = clock.t.Add(2 * time.Minute)
		l.fail("192.0.2.1")
		if n := len(l.buckets); n != 1 {
			t.Fatalf("%d buckets after the sweep, want 1", n)
		}
	})
}
