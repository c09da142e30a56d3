package proxy

import (
	"context"
	"errors"
	"sync"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// queueLocal queues, inside MULTI, a command respguard answers itself: it
// answers QUEUED now, as Redis does, and its answer takes its place in
// EXEC's array when the transaction runs (see execSplicing).
func (s *session) queueLocal(seq uint64, args [][]byte) {
	if equalFold(args[0], policy.RespguardCommand) {
		if reply := respguardArgsError(args); reply != nil {
			s.refuse(seq, reply) // Redis rejects a bad subcommand or argument count while queueing
			return
		}
	}
	owned := make([][]byte, len(args))
	for i, a := range args {
		owned[i] = append([]byte(nil), a...)
	}
	s.ded.mu.Lock()
	s.ded.tx.locals = append(s.ded.tx.locals, localEntry{at: s.ded.tx.entries, args: owned})
	s.ded.tx.entries++
	s.ded.mu.Unlock()
	s.out.local(seq, resp.AppendSimple(nil, "QUEUED"))
}

// execSplicing sends the EXEC of a transaction that queued commands
// respguard answers itself, waits for Redis's array, and hands the client
// that array with respguard's answers in their places, computed in order
// now that the transaction runs; a SELECT queued there is applied too
// if its element is +OK. If
// the transaction did not run (a null array, EXECABORT), nothing queued
// takes effect and the reply passes as it is. Caller holds ded.mu;
// execSplicing releases it.
func (s *session) execSplicing(seq uint64, cmd resp.Command) bool {
	selects, locals := newSelectOutcome(s.ded.tx.selects), s.ded.tx.locals
	if len(selects.selects) > 0 {
		s.ded.conn.MarkDirty() // its db is known only once the reply is in
	}
	c := &execCapture{out: s.out, done: make(chan struct{})}
	s.sendTo(c, seq, cmd)
	s.ded.endTx()
	s.ded.mu.Unlock()
	<-c.done // an EXEC does not block; a failed connection answers it too
	reply, err := c.result()
	if err != nil {
		s.out.Abort(err)
		return true
	}
	elems, ran := resp.Elements(reply)
	if !ran {
		s.pinnedTarget().Deliver(seq, reply, true)
		return true
	}
	for i, e := range elems {
		selects.element(i, e[0])
	}
	s.applySelected(selects.db)
	out := resp.AppendArray(nil, len(elems)+len(locals))
	for i, e, l := 0, 0, 0; e < len(elems) || l < len(locals); i++ {
		if l < len(locals) && (locals[l].at <= i || e == len(elems)) {
			out = append(out, s.localInTx(locals[l].args)...)
			l++
			continue
		}
		out = append(out, elems[e]...)
		e++
	}
	s.pinnedTarget().Deliver(seq, out, true)
	return true
}

// localInTx answers a command queued by queueLocal.
func (s *session) localInTx(args [][]byte) []byte {
	var buf [16]byte
	switch name := string(lowerName(buf[:], args[0])); {
	case name == "auth":
		return s.authenticate(args)
	case name == "acl":
		return s.aclLocal(args)
	case name == policy.RespguardCommand:
		return s.respguard(context.Background(), args) // RELOAD: the reloader's own lifetime bounds it
	case name == "unsubscribe" || name == "punsubscribe" || name == "sunsubscribe":
		// As Redis does, one element of EXEC's array holds every reply.
		return unsubscribeReply(name, args, s.proto)
	case clientSub(args) == "setname":
		return s.setName(args)
	case clientSub(args) == "id", clientSub(args) == "info", clientSub(args) == "list":
		return s.clientLocal(args)
	case clientSub(args) == "pause":
		return s.clientPause(args)
	case clientSub(args) == "unpause":
		return s.clientUnpause(args)
	case clientSub(args) == "no-evict":
		return s.clientNoEvict(args)
	}
	return s.getName(args)
}

// errOutputLimit ends a client whose EXEC reply, held whole for splicing,
// passes its output buffer limit.
var errOutputLimit = errors.New("proxy: EXEC reply over the client's output buffer limit")

// execCapture holds an EXEC's whole reply for execSplicing. It implements
// pool.Target; pushes (tracking invalidations) pass straight on.
type execCapture struct {
	out  *outbox
	done chan struct{}
	once sync.Once

	mu    sync.Mutex // guards reply and err
	reply []byte
	err   error
}

var _ pool.Target = (*execCapture)(nil)

func (c *execCapture) Deliver(_ uint64, p []byte, last bool) {
	c.mu.Lock()
	c.reply = append(c.reply, p...)
	over := c.out.limits.hard > 0 && len(c.reply) > c.out.limits.hard
	c.mu.Unlock()
	if over {
		c.out.overflowNow()
		c.Abort(errOutputLimit)
		return
	}
	if last {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *execCapture) DeliverPush(p []byte, last bool) { c.out.DeliverPush(p, last) }

func (c *execCapture) Abort(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.once.Do(func() { close(c.done) })
}

func (c *execCapture) result() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reply, c.err
}
