package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/proxy/resp"
)

// errProbeTimeout is returned when a probe's replies do not arrive in time.
var errProbeTimeout = errors.New("proxy: probe timed out")

// probeTarget collects the replies to respguard's own probe commands (sizes
// the guard needs before it lets a command through). It implements pool.Target.
type probeTarget struct {
	mu      sync.Mutex // guards replies and cur
	replies [][]byte
	cur     []byte
	err     error
	done    chan struct{}
}

func (p *probeTarget) Deliver(seq uint64, b []byte, last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = append(p.cur, b...)
	if !last {
		return
	}
	p.replies[seq] = p.cur
	p.cur = nil
	for _, r := range p.replies {
		if r == nil {
			return
		}
	}
	close(p.done)
}

func (p *probeTarget) DeliverPush([]byte, bool) {}

func (p *probeTarget) Abort(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
		close(p.done)
	}
}

// probe sends cmds on the client's current route and waits for their
// integer replies (-1 for any other reply). They run after the client's
// earlier commands (see sendOrder), and its later commands wait meanwhile,
// so execution order is kept. Callers hold no locks.
func (s *session) probe(ctx context.Context, cmds [][][]byte) ([]int64, error) {
	replies, err := s.roundTrip(ctx, cmds)
	if err != nil {
		return nil, err
	}
	sizes := make([]int64, len(cmds))
	for i, r := range replies {
		sizes[i] = parseIntReply(r)
	}
	return sizes, nil
}

// roundTrip sends cmds on the client's current route and returns their raw
// replies, waiting for them.
func (s *session) roundTrip(ctx context.Context, cmds [][][]byte) ([][]byte, error) {
	t := &probeTarget{replies: make([][]byte, len(cmds)), done: make(chan struct{})}
	pipe, err := s.probeRoute(ctx, cmds[0])
	if err != nil {
		return nil, err
	}
	ordered := pipe
	if s.cl != nil {
		ordered = nil // a node's connection: see sendOrder
	}
	if !s.order.moveTo(s.out, ordered, s.proto) {
		return nil, net.ErrClosed // the client is gone
	}
	for i, c := range cmds {
		if err := pipe.Send(t, uint64(i), nil, c); err != nil {
			return nil, err
		}
	}
	timer := time.NewTimer(probeTimeout)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
		return nil, errProbeTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return nil, t.err
	}
	return t.replies, nil
}

// probeRoute is the pipe for respguard's own commands: the client's
// dedicated connection or a shared one; in cluster mode, a shared connection
// of the node serving the first command's key.
func (s *session) probeRoute(ctx context.Context, first [][]byte) (*pool.Pipe, error) {
	if cl := s.srv.cluster; cl != nil {
		p := anyPrimary(cl, s.id)
		if keys := s.srv.keys(first, nil); len(keys) > 0 {
			p, _ = cl.Primary(cluster.Slot(first[keys[0]]))
		}
		if p == nil {
			return nil, errSlotNotServed
		}
		return p.Shared(ctx, 0, s.proto, s.id)
	}
	s.ded.mu.Lock()
	var pipe *pool.Pipe
	if s.ded.conn != nil {
		pipe = s.ded.conn.Pipe
	}
	s.ded.mu.Unlock()
	if pipe != nil {
		return pipe, nil
	}
	return s.srv.pool.Shared(ctx, s.db, s.proto, s.id)
}

// errSlotNotServed is returned for a probe whose slot no cluster node serves.
var errSlotNotServed = errors.New("proxy: cluster slot not served")

const probeTimeout = 5 * time.Second

// parseIntReply returns the value of ":N\r\n", or -1.
func parseIntReply(r []byte) int64 {
	if kind, n, _, ok := resp.ReplyHeader(r); ok && kind == ':' {
		return n
	}
	return -1
}
