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
// in, or fails after timeout without progress, or when the pool is
// retargeted or closed; the caller sends at once, and closes the pipe if it
// cannot.
func (p *Pool) Own(ctx context.Context, proto int, timeout time.Duration) (*Pipe, error) {
	cfg, gen := p.target()
	pipe, err := Dial(ctx, cfg, 0, proto)
	if err != nil {
		return nil, err
	}
	if !p.track(pipe, gen) {
		pipe.fail(ErrRetargeted)
		return nil, ErrRetargeted
	}
	go func() { // Close does not wait for a reply that may never come
		select {
		case <-p.closed:
			pipe.Close()
		case <-pipe.Done():
		}
	}()
	pipe.SetOwner(nil, (*Pipe).closeIfIdle)
	pipe.SetCommandTimeout(timeout)
	return pipe, nil
}
