package proxy

import (
	"context"
	"math"
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

// churnBudget is a token bucket of upstream connections a client may cost,
// kept as one number (the generic cell rate algorithm): the budget is spent
// up to paidUntil, which moves one interval on per connection charged, and
// a client may run ahead of the clock by churnBurst intervals. paidUntil
// counts intervals since churnEpoch in 32 bits, so that the budget fits in
// the padding of the session's dedicated state (see TestSessionSize); after
// 4 years of uptime it stops limiting. The zero value is full. Not safe
// for concurrent use: dedicated.mu guards the session's.
type churnBudget struct {
	paidUntil uint32 // in churnIntervals since churnEpoch
}

const churnInterval = time.Second / churnRate // one connection's share of the budget

// churnEpoch is the origin of churnBudget's clock.
var churnEpoch = time.Now()

// spend charges one upstream connection, destroyed or dialed.
func (b *churnBudget) spend(now time.Time) {
	at := int64(now.Sub(churnEpoch) / churnInterval)
	if next := max(int64(b.paidUntil), at) + 1; next <= math.MaxUint32 {
		b.paidUntil = uint32(next)
	}
}

// delay returns how long the client must wait before it may cost another
// connection.
func (b *churnBudget) delay(now time.Time) time.Duration {
	free := churnEpoch.Add(time.Duration(int64(b.paidUntil)-churnBurst) * churnInterval)
	return max(0, free.Sub(now))
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
