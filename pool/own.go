package pool

import (
	"context"
	"time"
)

// Own dials a connection of its own for commands that must not wait behind
// any other (SCRIPT KILL, CLIENT UNPAUSE...): set up for proto in db 0,
// outside the dedicated pool and its limit, and past an open circuit
// breaker (a busy or paused server is up; its shared connection merely
// waits). The returned pipe closes itself once its last awaited reply is
// in, or fails after timeout without progress; the caller sends at once,
// and closes the pipe if it cannot.
func (p *Pool) Own(ctx context.Context, proto int, timeout time.Duration) (*Pipe, error) {
	cfg, _ := p.target()
	pipe, err := Dial(ctx, cfg, 0, proto)
	if err != nil {
		return nil, err
	}
	pipe.SetOwner(nil, (*Pipe).closeIfIdle)
	pipe.SetCommandTimeout(timeout)
	return pipe, nil
}
