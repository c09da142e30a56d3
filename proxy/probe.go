package proxy

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/proxy/resp"
)

// probeBatch is how many of one command's probes are in flight at a time.
// Other clients' commands on the same shared connection then wait behind
// one batch at most (about a thousand SCARDs: well under a millisecond of
// Redis time), not behind all of them, and a sum of sizes already over the
// limit spares the remaining probes.
const probeBatch = 1024

// decideByProbing runs a Probe plan's probes on the client's current route,
// probeBatch at a time, and decides the command from their replies. The
// probes run in order with the client's commands, so they wait behind just
// what its command would wait behind in Redis: nothing but a failure of the
// connection (its command timeout) or a hang-up of the session ends the
// wait early. Behind the client's own commands on its dedicated connection,
// which may block for good (BLPOP 0), the client closing its connection
// hangs it up too, as when it waits for the pool. A probe that cannot tell
// its size gets the read refused (see guard.Tally.Unchecked): nothing else
// would bound it.
func (s *session) decideByProbing(ctx context.Context, g *guard.Guard, args [][]byte, probes [][][]byte) guard.Plan {
	tally := g.Tally(args)
	ctx, done := s.untilHangUp(ctx)
	defer done()
	pipe, dedicated, err := s.probePipe(ctx, probes[0])
	if err != nil {
		return tally.Unchecked(probeFailure(err))
	}
	if dedicated && pipe.InFlight() > 0 {
		defer s.onClientClose(s.hangUp)()
	}
	t := &probeTarget{}
	var sizes []int64
	for len(probes) > 0 {
		batch := probes[:min(probeBatch, len(probes))]
		probes = probes[len(batch):]
		replies, err := t.exchange(ctx, pipe, batch)
		if err != nil && dedicated && errors.Is(err, pool.ErrClosed) {
			// The client's dedicated connection was let go as the probe
			// went out (its UNSUBSCRIBE ended the stream): probe where the
			// command now goes.
			if pipe, dedicated, err = s.probePipe(ctx, batch[0]); err == nil {
				replies, err = t.exchange(ctx, pipe, batch)
			}
		}
		if err != nil {
			return tally.Unchecked(probeFailure(err))
		}
		var why string
		sizes, why = probeSizes(sizes[:0], replies)
		if why != "" && !slices.Contains(sizes, guard.FailsToo) {
			return tally.Unchecked(why)
		}
		if tally.Add(sizes) {
			break
		}
	}
	return tally.Plan()
}

// probeSizes appends the size each probe's reply tells to sizes:
// guard.FailsToo for an error that Redis gives the guarded command too
// (guard.ErrorRepeats). why describes the first reply that tells neither
// (its entry is 0): an error such as LOADING, NOPERM, or the connection's
// failure.
func probeSizes(sizes []int64, replies [][]byte) (_ []int64, why string) {
	for _, r := range replies {
		kind, n, _, ok := resp.ReplyHeader(r)
		switch {
		case ok && kind == ':' && n >= 0:
		case len(r) > 0 && r[0] == '-' && guard.ErrorRepeats(r[1:]):
			n = guard.FailsToo
		default:
			n = 0
			if why == "" {
				why = describeProbeReply(r)
			}
		}
		sizes = append(sizes, n)
	}
	return sizes, why
}

// describeProbeReply describes a probe's reply that tells no size: its
// error line (without a leading "ERR "), or that it was unexpected.
func describeProbeReply(r []byte) string {
	if len(r) == 0 || r[0] != '-' {
		return "unexpected reply to a probe"
	}
	return strings.TrimPrefix(strings.TrimRight(string(r[1:]), "\r\n"), "ERR ")
}

// probeFailure describes why probes got no replies.
func probeFailure(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
		return "the client is gone"
	}
	return "upstream unavailable: " + err.Error()
}

// roundTrip sends cmds on the client's current route and returns their raw
// replies, waiting at most infoTimeout for them: INFO answers respguard's
// own section even when Redis does not answer.
func (s *session) roundTrip(ctx context.Context, cmds [][][]byte) ([][]byte, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, infoTimeout, errInfoTimeout)
	defer cancel()
	pipe, _, err := s.probePipe(ctx, cmds[0])
	if err != nil {
		return nil, err
	}
	return (&probeTarget{}).exchange(ctx, pipe, cmds)
}

const infoTimeout = 5 * time.Second

// errInfoTimeout is returned when Redis does not answer INFO in time.
var errInfoTimeout = errors.New("proxy: no reply to INFO within 5s")

// probePipe is the pipe for respguard's own commands before the client's
// command (see probeRoute), once the client's earlier commands are
// answered if it must move there (see sendOrder).
func (s *session) probePipe(ctx context.Context, first [][]byte) (_ *pool.Pipe, dedicated bool, _ error) {
	pipe, dedicated, err := s.probeRoute(ctx, first)
	if err != nil {
		return nil, false, err
	}
	ordered := pipe
	if s.cl != nil {
		ordered = nil // a node's connection: see sendOrder
	}
	if !s.order.moveTo(s.out, ordered, s.proto) {
		return nil, false, net.ErrClosed // the client is gone
	}
	return pipe, dedicated, nil
}

// probeRoute is the pipe for respguard's own commands: the client's
// dedicated connection (dedicated is then true) or a shared one; in cluster
// mode, a shared connection of the node serving the first command's key.
func (s *session) probeRoute(ctx context.Context, first [][]byte) (_ *pool.Pipe, dedicated bool, _ error) {
	if cl := s.srv.cluster; cl != nil {
		p := anyPrimary(cl, s.id)
		if keys := s.srv.keys(first, nil); len(keys) > 0 {
			p, _ = cl.Primary(cluster.Slot(first[keys[0]]))
		}
		if p == nil {
			return nil, false, errSlotNotServed
		}
		pipe, err := p.Shared(ctx, 0, s.proto, s.id)
		return pipe, false, err
	}
	s.ded.mu.Lock()
	var pipe *pool.Pipe
	if s.ded.conn != nil {
		pipe = s.ded.conn.Pipe
	}
	s.ded.mu.Unlock()
	if pipe != nil {
		return pipe, true, nil
	}
	pipe, err := s.srv.pool.Shared(ctx, s.db, s.proto, s.id)
	return pipe, false, err
}

// errSlotNotServed is returned for a probe whose slot no cluster node serves.
var errSlotNotServed = errors.New("proxy: cluster slot not served")

// probeTarget collects the replies to one batch of respguard's own commands
// (probes, INFO) sent on one pipe. It implements pool.Target. Its Deliver
// runs on the pipe's reader goroutine, which every other client of the
// pipe waits for, so it does O(1) work per reply besides copying it. The
// session's reader goroutine reuses it for the next batch once exchange
// has returned the last one's replies.
type probeTarget struct {
	mu    sync.Mutex // guards the fields below during an exchange
	buf   []byte     // the complete replies, one after another
	cur   []byte     // the parts of a reply delivered in parts (a big INFO)
	spans []span     // each command's reply in buf
	left  int        // replies not yet complete
	err   error      // a reply was cut off (Abort)
	done  chan struct{}
}

// span is one reply's place in probeTarget.buf.
type span struct{ start, end int }

func (p *probeTarget) Deliver(seq uint64, b []byte, last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !last {
		p.cur = append(p.cur, b...)
		return
	}
	start := len(p.buf)
	p.buf = append(append(p.buf, p.cur...), b...)
	p.cur = p.cur[:0]
	if seq < uint64(len(p.spans)) && p.left > 0 {
		p.spans[seq] = span{start, len(p.buf)}
		if p.left--; p.left == 0 {
			close(p.done)
		}
	}
}

func (p *probeTarget) DeliverPush([]byte, bool) {}

func (p *probeTarget) Abort(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil && p.left > 0 {
		p.err, p.left = err, 0
		close(p.done)
	}
}

// exchange sends cmds on pipe and returns their raw replies, valid until
// the next exchange. It waits until they are in, the pipe fails (its
// commands are then answered with errors), or ctx ends.
func (p *probeTarget) exchange(ctx context.Context, pipe *pool.Pipe, cmds [][][]byte) ([][]byte, error) {
	p.mu.Lock()
	p.buf, p.cur, p.err = p.buf[:0], p.cur[:0], nil
	p.spans = slices.Grow(p.spans[:0], len(cmds))[:len(cmds)]
	p.left, p.done = len(cmds), make(chan struct{})
	done := p.done
	p.mu.Unlock()
	for i, c := range cmds {
		if err := pipe.Send(p, uint64(i), nil, c); err != nil {
			return nil, err
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	replies := make([][]byte, len(cmds))
	for i, s := range p.spans {
		replies[i] = p.buf[s.start:s.end:s.end]
	}
	return replies, nil
}
