package proxy

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// guess runs one attempt that fails and returns how it was handled.
func guess(l *authLimiter, ip, user, password string) authAttempt {
	a := l.reserve(ip, user, password)
	if !a.refused {
		a.done(false)
	}
	return a
}

func TestAuthLimiter(t *testing.T) {
	t.Run("a nil limiter allows everything", func(t *testing.T) {
		var l *authLimiter
		if a := guess(l, "10.0.0.1", "app", "x"); a.refused || a.wait != 0 {
			t.Fatalf("nil limiter: %+v", a)
		}
	})
	t.Run("distinct guesses spend the burst, then wait for the next token, then are refused", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(6, clock.now) // one attempt back every 10 s
		for i := range 6 {
			if a := guess(l, "10.0.0.1", "app", fmt.Sprint("guess-", i)); a.refused || a.wait != 0 {
				t.Fatalf("guess %d within the burst: %+v", i, a)
			}
		}
		if a := guess(l, "10.0.0.1", "app", "guess-6"); a.refused || a.wait != 10*time.Second {
			t.Fatalf("first guess over the burst: %+v, want a 10 s wait", a)
		}
		a := guess(l, "10.0.0.1", "app", "guess-7")
		if !a.refused || !a.first {
			t.Fatalf("a guess that would wait 20 s: %+v, want the first refusal", a)
		}
		if a := guess(l, "10.0.0.1", "app", "guess-8"); !a.refused || a.first {
			t.Fatalf("second refusal: %+v, want refused and not first", a)
		}
		clock.t = clock.t.Add(10 * time.Second)
		if a := l.reserve("10.0.0.1", "app", "right"); a.refused || a.wait != 10*time.Second {
			t.Fatalf("after 10 s: %+v, want a 10 s wait", a)
		}
	})
	t.Run("repeating a known wrong password costs nothing", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(3, clock.now)
		for i := range 100 {
			if a := guess(l, "127.0.0.1", "app", "stale"); a.refused || a.wait != 0 {
				t.Fatalf("retry %d of the same wrong password: %+v", i, a)
			}
		}
		if a := l.reserve("127.0.0.1", "app", "right"); a.refused || a.wait != 0 {
			t.Fatalf("the right password after 100 stale retries: %+v, want no wait", a)
		}
	})
	t.Run("a success gives its token back", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(2, clock.now)
		for range 10 {
			l.reserve("10.0.0.1", "app", "right").done(true)
		}
		if a := guess(l, "10.0.0.1", "app", "x"); a.wait != 0 || a.refused {
			t.Fatalf("after successes: %+v", a)
		}
	})
	t.Run("users and addresses are accounted apart", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(1, clock.now)
		guess(l, "10.0.0.1", "app", "a")
		if a := guess(l, "10.0.0.1", "app", "b"); !a.refused {
			t.Fatalf("second guess at 1/min: %+v", a)
		}
		for _, other := range [][2]string{{"10.0.0.1", "admin"}, {"10.0.0.2", "app"}} {
			if a := l.reserve(other[0], other[1], "b"); a.refused || a.wait != 0 {
				t.Fatalf("%v: %+v", other, a)
			}
		}
	})
	t.Run("memory stays bounded: refilled buckets are swept and the map is capped", func(t *testing.T) {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		l := newAuthLimiter(10, clock.now)
		for i := range maxTrackedBuckets + 100 {
			guess(l, fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), "app", "x")
		}
		if n := len(l.buckets); n > maxTrackedBuckets {
			t.Fatalf("%d buckets, cap %d", n, maxTrackedBuckets)
		}
		clock.t = clock.t.Add(2 * time.Minute)
		guess(l, "192.0.2.1", "app", "x")
		if n := len(l.buckets); n != 1 {
			t.Fatalf("%d buckets after the sweep, want 1", n)
		}
	})
}
