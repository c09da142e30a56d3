package proxy

import (
	"context"
	"time"
)

// Bounds on how fast one client makes respguard open upstream connections
// by having its dedicated ones destroyed (a Pub/Sub or MONITOR session that
// ends, RESET while pinned, a READONLY Redis ran, an EXEC that changed the
// db) or by control commands, which each dial one (SCRIPT KILL...): a burst
// of churnBurst, then churnRate per second. Past that the client's next
// such command waits, so a client looping them slows itself down instead
// of filling the host's ports with closed connections (TIME_WAIT) and
// costing Redis a connection set-up each time.
const (
	churnRate  = 32 // per second
	churnBurst = 32
)

// churnBudget is a token bucket of upstream connections a client may cost.
// The zero value is full. Not safe for concurrent use: dedicated.mu guards
// the session's.
type churnBudget struct {
	tokens float64 // may go below 0: connections charged ahead of their budget
	at     time.Time
}

// refill adds the tokens earned since the last look, up to churnBurst.
func (b *churnBudget) refill(now time.Time) {
	if b.at.IsZero() {
		b.tokens = churnBurst
	} else {
		b.tokens = min(churnBurst, b.tokens+now.Sub(b.at).Seconds()*churnRate)
	}
	b.at = now
}

// spend charges one upstream connection, destroyed or dialed.
func (b *churnBudget) spend(now time.Time) {
	b.refill(now)
	b.tokens--
}

// delay returns how long the client must wait before it may cost another
// connection.
func (b *churnBudget) delay(now time.Time) time.Duration {
	b.refill(now)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / churnRate * float64(time.Second))
}

// waitChurn waits out d, unless ctx ends first (the client is hung up).
func waitChurn(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
