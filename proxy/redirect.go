package proxy

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/proxy/resp"
)

// Redirect limits: a command follows at most maxRedirects MOVED/ASK/TRYAGAIN/
// CLUSTERDOWN answers, backing off from retryBase (doubling) on the last two.
const (
	maxRedirects = 6
	retryBase    = 20 * time.Millisecond
)

// redirect forwards one command to a Redis Cluster node and follows the
// answers meant for a cluster client, not for the application: -MOVED (the
// slot has a new owner: record it, resend there), -ASK (resend once to the
// importing node, after ASKING), -TRYAGAIN and -CLUSTERDOWN (resend after a
// bounded backoff). Every other reply passes to dst unchanged.
//
// It implements pool.Target. Its methods run on the reader goroutine of the
// pipe the command is on, one reply at a time; a resend runs on a goroutine
// of its own, since reader goroutines must not block.
type redirect struct {
	cl     *cluster.Cluster
	dst    pool.Target
	dstSeq uint64
	home   *redirects
	raw    []byte // the encoded command, kept for resending
	slot   int    // -1: keyless
	proto  int
	hint   uint64 // spreads a client over a node's shared pipes
	tries  int
	hold   errorHold
}

// redirects recycles redirect values (and their command buffers) for one
// server: one is taken per forwarded command in cluster mode.
type redirects struct{ free sync.Pool }

// get returns a redirect for the command raw (copied; nil: encode args) on
// behalf of a client.
func (rs *redirects) get(cl *cluster.Cluster, dst pool.Target, dstSeq uint64, raw []byte, args [][]byte, slot, proto int, hint uint64) *redirect {
	r, _ := rs.free.Get().(*redirect)
	if r == nil {
		r = &redirect{home: rs}
	}
	r.cl, r.dst, r.dstSeq, r.slot, r.proto, r.hint, r.tries = cl, dst, dstSeq, slot, proto, hint, 0
	if raw != nil {
		r.raw = append(r.raw[:0], raw...)
	} else {
		r.raw = resp.AppendCommand(r.raw[:0], args...)
	}
	return r
}

// done recycles r once its final reply has gone to dst; nothing may use it
// after. A huge command's buffer is left to the garbage collector.
func (r *redirect) done() {
	r.cl, r.dst = nil, nil
	if cap(r.raw) > 64<<10 {
		r.raw = nil
	}
	r.home.free.Put(r)
}

// send puts the command on one of p's shared pipes; asking prefixes ASKING.
// A failure is answered to dst, and the topology is refreshed: the node may
// be gone. Once the command is on the pipe, r belongs to the pipe's reader.
func (r *redirect) send(ctx context.Context, p *pool.Pool, asking bool) {
	if p == nil {
		r.finish(slotNotServed(r.slot))
		return
	}
	pipe, err := p.Shared(ctx, 0, r.proto, r.hint)
	if err == nil {
		if asking {
			err = pipe.SendAsking(r, r.dstSeq, r.raw)
		} else {
			err = pipe.Send(r, r.dstSeq, r.raw, nil)
		}
	}
	if err != nil {
		r.cl.Refresh()
		r.finish(pool.UnavailableReply(err))
	}
}

// finish answers dst with reply and recycles r.
func (r *redirect) finish(reply []byte) {
	r.dst.Deliver(r.dstSeq, reply, true)
	r.done()
}

func (r *redirect) Deliver(_ uint64, p []byte, last bool) {
	switch pass, msg := r.hold.take(p, last); {
	case pass:
		r.dst.Deliver(r.dstSeq, p, last)
		if last {
			r.done()
		}
	case msg != nil && !r.follow(msg):
		r.finish(msg)
	}
}

func (r *redirect) DeliverPush(p []byte, last bool) { r.dst.DeliverPush(p, last) }

func (r *redirect) Abort(err error) { r.dst.Abort(err) }

// follow acts on a cluster redirection or retryable error; false means msg
// is the client's reply.
func (r *redirect) follow(msg []byte) bool {
	code := errorCode(msg)
	switch code {
	case "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN":
	default:
		if bytes.HasPrefix(msg, []byte("-ERR upstream unavailable")) {
			r.cl.Refresh() // a node failed: its replica may be taking over
		}
		return false
	}
	if r.tries >= maxRedirects {
		if code == "MOVED" || code == "ASK" {
			r.finish(fmt.Appendf(nil, "-TRYAGAIN slot %d still moving after %d redirections\r\n", r.slot, r.tries))
			return true
		}
		return false
	}
	r.tries++
	switch code {
	case "MOVED", "ASK":
		slot, addr, ok := parseRedirect(msg)
		if !ok {
			return false
		}
		if code == "MOVED" {
			r.cl.Moved(slot, addr)
		}
		go r.send(context.Background(), r.cl.Node(addr), code == "ASK")
	default: // TRYAGAIN (keys mid-migration), CLUSTERDOWN (failover under way)
		r.cl.Refresh()
		time.AfterFunc(retryBase<<(r.tries-1), func() { r.send(context.Background(), r.owner(), false) })
	}
	return true
}

// owner is the pool now serving r's slot (any primary for a keyless command).
func (r *redirect) owner() *pool.Pool {
	if r.slot >= 0 {
		if p, _ := r.cl.Primary(r.slot); p != nil {
			return p
		}
	}
	return anyPrimary(r.cl, r.hint)
}

// anyPrimary picks a primary for a keyless command, spreading clients by
// hint; nil when no shard is known.
func anyPrimary(cl *cluster.Cluster, hint uint64) *pool.Pool {
	pools, _ := cl.Primaries()
	if len(pools) == 0 {
		return nil
	}
	return pools[int(hint%uint64(len(pools)))]
}

// slotNotServed is Redis Cluster's reply for a slot no node serves.
func slotNotServed(slot int) []byte {
	if slot < 0 {
		return []byte("-CLUSTERDOWN The cluster is down\r\n")
	}
	return []byte("-CLUSTERDOWN Hash slot not served\r\n")
}

// parseRedirect reads "-MOVED 3999 127.0.0.1:6381\r\n" (or ASK).
func parseRedirect(msg []byte) (slot int, addr string, ok bool) {
	fields := bytes.Fields(msg)
	if len(fields) != 3 {
		return 0, "", false
	}
	s, a := fields[1], fields[2]
	n, err := strconv.Atoi(string(s))
	if err != nil || n < 0 || n >= cluster.Slots || len(a) == 0 {
		return 0, "", false
	}
	return n, string(a), true
}

// pinnedReplies passes the replies of a cluster client's dedicated
// connection to its outbox. Commands there (in a transaction, blocked, or
// watching) cannot be resent elsewhere, so a -MOVED or -ASK (the slot moved
// after the connection was chosen) becomes -TRYAGAIN, after the map learns
// of the move: the client's retry goes to the right node, and no redirect
// reaches it. It implements pool.Target.
type pinnedReplies struct {
	out *outbox
	cl  *cluster.Cluster

	mu   sync.Mutex // guards hold: a dying connection may answer while the next one does
	hold errorHold

	moved atomic.Bool // a reply was turned into TRYAGAIN; see session.afterPinnedMove
}

func (p *pinnedReplies) Deliver(seq uint64, b []byte, last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch pass, msg := p.hold.take(b, last); {
	case pass:
		p.out.Deliver(seq, b, last)
	case msg != nil:
		p.out.Deliver(seq, p.retryElsewhere(msg), true)
	}
}

// retryElsewhere turns a MOVED or ASK into TRYAGAIN (a MOVED updating the
// map first); other errors are returned as they are.
func (p *pinnedReplies) retryElsewhere(msg []byte) []byte {
	code := errorCode(msg)
	if code != "MOVED" && code != "ASK" {
		return msg
	}
	slot, addr, ok := parseRedirect(msg)
	if !ok {
		return msg
	}
	if code == "MOVED" {
		p.cl.Moved(slot, addr)
	}
	p.moved.Store(true)
	return fmt.Appendf(nil, "-TRYAGAIN slot %d moved to %s while this client was pinned to another node (MULTI, WATCH or a blocking command); retry\r\n", slot, addr)
}

func (p *pinnedReplies) DeliverPush(b []byte, last bool) { p.out.DeliverPush(b, last) }

func (p *pinnedReplies) Abort(err error) { p.out.Abort(err) }

// errorHold splits a stream of replies: a reply that is not an error passes
// on chunk by chunk as it comes; an error reply (one line) is held whole so
// that it can be judged (is it a redirect?) before it is passed on.
type errorHold struct {
	passing bool   // the current reply passes
	held    []byte // the current error reply, so far
}

// take handles one chunk of a reply: pass means hand b on as it is;
// otherwise msg is the held error once it is whole (nil until then).
func (h *errorHold) take(b []byte, last bool) (pass bool, msg []byte) {
	if !h.passing && h.held == nil && len(b) > 0 && b[0] != '-' {
		h.passing = true
	}
	if h.passing {
		h.passing = !last
		return true, nil
	}
	h.held = append(h.held, b...)
	if !last {
		return false, nil
	}
	msg, h.held = h.held, nil
	return false, msg
}
