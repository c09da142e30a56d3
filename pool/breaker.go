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
	base time.Duration

	mu      sync.Mutex // guards the fields below
	backoff time.Duration
	until   time.Time
	lastErr error
}

func (b *breaker) check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lastErr != nil && time.Now().Before(b.until) {
		return fmt.Errorf("%w (retrying in %s)", b.lastErr, time.Until(b.until).Round(time.Millisecond))
	}
	return nil
}

func (b *breaker) failure(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.backoff == 0:
		b.backoff = b.base
	case b.backoff < maxRetryBackoff:
		b.backoff *= 2
	}
	b.until = time.Now().Add(b.backoff)
	b.lastErr = err
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backoff, b.lastErr = 0, nil
}
