package proxy

import (
	"context"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// controlTimeout bounds the wait for the reply to a control command (a
// SHUTDOWN that saves a large dataset may take a while).
const controlTimeout = 30 * time.Second

// control sends a command that ends a busy or paused server (SCRIPT KILL,
// FUNCTION KILL, CLIENT UNPAUSE, SHUTDOWN, a translated CLIENT UNBLOCK) over a connection of
// its own, at once: on the client's shared connection it would wait behind
// the very script or paused write it is meant to end. Its reply still takes
// the client's next place in line. In cluster mode it goes to every primary
// (SHUTDOWN: to one), and the replies are merged.
func (s *session) control(ctx context.Context, seq uint64, cmd resp.Command) {
	if s.srv.cluster == nil {
		s.sendOwn(ctx, s.srv.pool, s.out, seq, cmd.Args)
		return
	}
	pools, _ := s.srv.cluster.Primaries()
	if len(pools) == 0 {
		s.out.local(seq, slotNotServed(-1))
		return
	}
	if equalFold(cmd.Args[0], "shutdown") {
		pools = pools[:1]
	}
	f := newFanout(s.out, seq, len(pools), mergeControl)
	for i, p := range pools {
		s.sendOwn(ctx, p, f, uint64(i), cmd.Args)
	}
}

// sendOwn sends args over a connection of its own from p; the reply (or the
// failure) goes to target as seq.
func (s *session) sendOwn(ctx context.Context, p *pool.Pool, target pool.Target, seq uint64, args [][]byte) {
	s.ded.mu.Lock()
	now := time.Now()
	churn := s.ded.churn.delay(now)
	s.ded.churn.spend(now)
	s.ded.mu.Unlock()
	err := waitChurn(ctx, churn)
	var pipe *pool.Pipe
	if err == nil {
		pipe, err = p.Own(ctx, s.proto, controlTimeout)
	}
	if err == nil {
		if err = pipe.Send(target, seq, nil, args); err != nil {
			pipe.Close()
		}
	}
	if err != nil {
		target.Deliver(seq, pool.UnavailableReply(err), true)
	}
}

// mergeControl merges the nodes' replies to a control command: integers
// (counts) add up; otherwise the first
// success wins (the node that ran the script killed it), else the first error.
func mergeControl(parts [][]byte) []byte {
	var sum int64
	for _, p := range parts {
		kind, n, _, ok := resp.ReplyHeader(p)
		if !ok || kind != ':' {
			return firstSuccess(parts)
		}
		sum += n
	}
	return resp.AppendInt(nil, sum)
}

// firstSuccess returns the first part that is not an error, else the first.
func firstSuccess(parts [][]byte) []byte {
	for _, p := range parts {
		if len(p) > 0 && p[0] != '-' {
			return p
		}
	}
	return parts[0]
}
