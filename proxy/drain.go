package proxy

import (
	"context"
	"time"

	"github.com/respguard/respguard/pool"
)

// drainInterval is how often Shutdown looks for clients that can only wait.
const drainInterval = 100 * time.Millisecond

// drainWaiting ends, as Redis's own SHUTDOWN does, what would otherwise
// wait forever once no new command is read: blocking commands on dedicated
// connections are unblocked upstream (CLIENT UNBLOCK: each gets its timeout
// reply, and none takes an element afterwards), so their sessions end with
// every reply delivered. Subscribers and MONITOR need nothing here: with
// reading stopped they have no reply awaited and close once their buffered
// messages are written. A pool whose user may not CLIENT UNBLOCK has its
// blocked clients closed instead (their upstream connections are destroyed).
func (s *Server) drainWaiting(ctx context.Context, warned *bool) {
	waiting := make(map[*pool.Pool][]int64)
	sessions := make(map[*pool.Pool][]*session)
	for _, sess := range s.liveSessions() {
		if p, id := sess.awaitingDedicated(); p != nil {
			waiting[p] = append(waiting[p], id)
			sessions[p] = append(sessions[p], sess)
		}
	}
	for p, ids := range waiting {
		if _, err := p.Unblock(ctx, ids...); err != nil && ctx.Err() == nil {
			if !*warned {
				*warned = true
				s.log.Warn("shutdown: could not unblock clients upstream; closing them", "error", err)
			}
			for _, sess := range sessions[p] {
				sess.hangUp()
			}
		}
	}
}

func (s *Server) liveSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	return list
}

// awaitingDedicated returns the pool and CLIENT ID of the session's
// dedicated connection while replies are awaited on it (nil otherwise).
func (s *session) awaitingDedicated() (*pool.Pool, int64) {
	d := &s.ded
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil || d.conn.InFlight() == 0 || d.conn.ClientID() == 0 {
		return nil, 0
	}
	return d.conn.Pool(), d.conn.ClientID()
}
