package pool

import (
	"fmt"
	"sync"
	"time"
)

// breaker fails dials fast after a failure, for a backoff that doubles on
// each consecutive failure (up to maxRetryBackoff) and resets on success, so
// clients get a prompt error while Redis is down instead of each waiting out
// a dial timeout.
type breaker struct {
	base     time.Duration // first backoff
	probeFor time.Duration // longest a probing dial takes (the dial timeout)

	mu       sync.Mutex // guards the fields below
	backoff  time.Duration
	until    time.Time // fail fast until then
	failedAt time.Time // when the last escalating failure was recorded
	lastErr  error
}

// check returns an error while the breaker is open. Once the backoff has
// passed it lets one caller through to probe and keeps failing the others
// fast until that probe ends, so a hung upstream costs one dial timeout per
// backoff rather than one per client.
func (b *breaker) check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lastErr == nil {
		return nil
	}
	now := time.Now()
	if now.Before(b.until) {
		return fmt.Errorf("%w (retrying in %s)", b.lastErr, b.until.Sub(now).Round(time.Millisecond))
	}
	b.until = now.Add(b.probeFor + b.backoff) // this caller probes; its outcome moves until
	return nil
}

// failure records a failed dial that started at started. Only a dial that
// began after the last recorded failure doubles the backoff: the other
// dials of one round (many clients at once) do not escalate it. A zero
// started opens a closed breaker without escalating an open one.
func (b *breaker) failure(err error, started time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	switch {
	case b.lastErr == nil:
		b.backoff = b.base
	case !started.After(b.failedAt):
		b.lastErr = err // same round: keep the window
		return
	case b.backoff < maxRetryBackoff:
		b.backoff = min(2*b.backoff, maxRetryBackoff)
	}
	b.until = now.Add(b.backoff)
	b.failedAt = now
	b.lastErr = err
}

// success closes the breaker and reports whether it was open.
func (b *breaker) success() (wasOpen bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasOpen = b.lastErr != nil
	b.backoff, b.lastErr = 0, nil
	return wasOpen
}

// isOpen reports whether dials are failing: the last one failed and none
// has succeeded since (fast failures, or a probe under way).
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr != nil
}
