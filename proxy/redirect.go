package proxy

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
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
	raw    []byte // the encoded command, kept for resending
	slot   int    // -1: keyless
	proto  int
	hint   uint64 // spreads a client over a node's shared pipes
	tries  int

	passing bool   // the current reply is going to dst
	held    []byte // an error reply being judged
}

// newRedirect returns a redirect for args (copied) on behalf of a client.
func newRedirect(cl *cluster.Cluster, dst pool.Target, dstSeq uint64, args [][]byte, slot, proto int, hint uint64) *redirect {
	return &redirect{cl: cl, dst: dst, dstSeq: dstSeq, raw: resp.AppendCommand(nil, args...), slot: slot, proto: proto, hint: hint}
}

// send puts the command on one of p's shared pipes; asking prefixes ASKING.
// A failure is answered to dst, and the topology is refreshed: the node may
// be gone.
func (r *redirect) send(ctx context.Context, p *pool.Pool, asking bool) {
	if p == nil {
		r.dst.Deliver(r.dstSeq, slotNotServed(r.slot), true)
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
		r.dst.Deliver(r.dstSeq, pool.UnavailableReply(err), true)
	}
}

func (r *redirect) Deliver(_ uint64, p []byte, last bool) {
	if !r.passing && r.held == nil && len(p) > 0 && p[0] != '-' {
		r.passing = true
	}
	if r.passing {
		r.dst.Deliver(r.dstSeq, p, last)
		if last {
			r.passing = false
		}
		return
	}
	r.held = append(r.held, p...)
	if !last {
		return
	}
	msg := r.held
	r.held = nil
	if !r.follow(msg) {
		r.dst.Deliver(r.dstSeq, msg, true)
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
			r.dst.Deliver(r.dstSeq, fmt.Appendf(nil, "-TRYAGAIN slot %d still moving after %d redirections\r\n", r.slot, r.tries), true)
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
