package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
	"github.com/respguard/respguard/telemetry"
)

// session is one client connection. Its reader goroutine (readCommands)
// owns the request parser and every field not under ded.mu; the outbox's
// writer role owns writes to conn. An idle session on a plain socket may
// park: its reader goroutine then returns and a new one takes over when the
// client sends something (see parking); one reader runs at a time.
type session struct {
	srv  *Server
	conn net.Conn
	id   uint64
	addr string
	rd   *resp.RequestReader // nil on a plain socket while parked (see parser)
	sock *socketReader       // rd's source on a plain socket; nil: TLS
	lim  *resp.Limits        // rd's limits, from Server.requestLimits
	out  *outbox

	// Reader-goroutine state.
	db, proto int
	name      string
	work      *scratch // while the client is active (nil once parked; see scratch)

	order sendOrder // where the client's last command went, so that the next runs after it (reader-goroutine state)

	// cl is a cluster-mode session's pinning (nil: standalone), set once in
	// newSession: it decides how a command that respguard does not answer
	// itself is routed, and where the replies of the dedicated connection go
	// (see route and pinnedTarget).
	cl *clusterPin

	// ded is the dedicated connection and the state it holds (see dedicated).
	ded dedicated

	redirPush *redirectPushes // pushes of a client that redirects its invalidations; made once, when first needed

	// What CLIENT LIST shows: set once, or reader-goroutine state published
	// to view after each command (see publish).
	started int64 // when the client connected, in Unix nanoseconds
	lastCmd string
	view    clientView
	fd      int32       // with the flags below, in one word of the session's size class
	gone    atomic.Bool // the session is ending: CLIENT LIST no longer shows it
	noEvict atomic.Bool // CLIENT NO-EVICT on: shown in CLIENT LIST (respguard evicts no client)

	replyMode replyMode // CLIENT REPLY: reader-goroutine state
	quit      bool      // the session ends with QUIT (reader-goroutine state)

	pol      *policy.Policy         // policy the session last judged by
	user     *policy.User           // nil: not authenticated (the policy requires AUTH)
	userName atomic.Pointer[string] // user's name ("" when unset), read by Server.SetPolicy
	subs     subscriptions          // Pub/Sub subscriptions, read by Server.SetPolicy

	repl  atomic.Pointer[replication] // SYNC/PSYNC: the link to Redis as a replica, made when first used (see replicate)
	pause pauseGate                   // CLIENT PAUSE: holds this client's commands (see holdWhilePaused)

	parking parking // whether a goroutine runs the reader (see park)
}

func newSession(srv *Server, conn net.Conn, id uint64) *session {
	s := &session{
		srv: srv, conn: conn, id: id, addr: conn.RemoteAddr().String(),
		out:   newOutbox(&srv.outLimits),
		proto: 2,
		fd:    int32(connFD(conn)),
	}
	now := time.Now()
	s.started = now.UnixNano()
	s.view.lastAt.Store(s.started)
	s.userName.Store(new(string))
	s.publish()
	s.lim = srv.requestLimits()
	if src := newClientReader(s, now); s.sock == nil { // a plain socket's parser is made when it has input (see parser)
		s.rd = resp.NewRequestReader(src, *s.lim)
	}
	if srv.cluster != nil {
		s.cl = &clusterPin{slot: -1, replies: pinnedReplies{out: s.out, cl: srv.cluster}}
	}
	s.parking.read.Store(true) // a full sweep interval before it may park
	return s
}

// outputOver ends the connection once the outbox's output is over (see
// outboxOwner).
func (s *session) outputOver() {
	if !s.replicaHandedOver() { // else the replication relay owns the socket
		s.shutSocket()
	}
	s.resume() // a parked reader sees the shutdown and ends the session
}

// hangUp ends the connection from any goroutine, without waiting: the
// output stops and the socket is shut down both ways, which ends the
// reader's wait with EOF (a parked session's too), and a wait of the
// reader for the pool ends without its command being sent (see
// poolWait); the session closes the socket as it ends (see end). A
// Close here would wait for the reader's held read (see heldRead), which
// may wait for the caller.
func (s *session) hangUp() {
	s.out.close()
	s.shutSocket()
	if stop := s.ded.stopWait.Load(); stop != nil { // a wait for the pool
		(*stop)()
	}
}

// shutSocket shuts a plain socket down both ways (the peer sees the
// connection end; reads return EOF), or closes any other connection (TLS),
// whose reads are never held.
func (s *session) shutSocket() {
	if s.sock == nil {
		_ = s.conn.Close()
		return
	}
	shutDown(s.sock.raw)
}

// releaseInput ends the reader's held read (see heldRead), so that the
// socket may be read by another or closed without waiting. Reader
// goroutine.
func (s *session) releaseInput() {
	if s.sock != nil {
		s.sock.release()
	}
}

// bytesOut counts bytes written to the client (see outboxOwner).
func (s *session) bytesOut(n int) { s.srv.bytesOut(n) }

// begin starts the session: its output side, then its reader. A client on
// a plain socket starts parked when parking is on, so that one that has
// sent nothing costs no goroutine: the parker starts its reader once it
// sends something.
func (s *session) begin() {
	// The outbox closes the connection once the output is over (see
	// outputOver), which unblocks the reader; out.done() is closed then.
	s.out.start(s.conn, s)
	if s.parkAtStart() {
		return
	}
	go s.serve()
}

// serve is the reader goroutine of a session that did not start parked:
// it reads commands until the client leaves, errs, or the server stops.
func (s *session) serve() {
	if s.sock != nil {
		s.sock.awaitInput()
	}
	s.readCommands()
}

// resumeReading is a parked session's reader starting again (see resume).
func (s *session) resumeReading() {
	s.sock.rearm()
	s.readCommands()
}

// readCommands is the session's reader goroutine. It returns once the
// session has ended, or once it has parked (see park): the parker then
// starts it again when the client sends something.
func (s *session) readCommands() {
	parked := false
	defer func() {
		r := recover()
		if !parked {
			s.releaseInput()
		}
		if parked && r == nil {
			return // the session is no longer this goroutine's
		}
		s.end(r)
	}()
	for {
		rd := s.parser()
		if lim := s.srv.requestLimits(); lim != s.lim { // Redis's limits changed
			s.lim = lim
			rd.SetLimits(*lim)
		}
		cmd, err := rd.ReadCommand()
		if err == errPark {
			if parked = s.park(); parked {
				return
			}
			continue
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		keep := s.handle(context.Background(), cmd)
		s.caughtUp()
		if h := s.srv.afterCommand.Load(); h != nil {
			(*h)(s)
		}
		if !keep {
			s.out.closeWhenDone()
			return
		}
	}
}

// parser returns the session's request parser, made anew for a session
// that parked (see shrink).
func (s *session) parser() *resp.RequestReader {
	if s.rd == nil {
		s.rd = resp.NewRequestReader(s.sock, *s.lim)
	}
	return s.rd
}

// end runs once the reader has stopped for good (panicked is what it
// panicked with, if it did): the output drains, the dedicated connection
// goes, and the server forgets the session.
func (s *session) end(panicked any) {
	s.gone.Store(true)
	if panicked != nil {
		s.srv.log.Error("bug: session panicked", "client", s.addr, "panic", panicked, "stack", string(debug.Stack()))
		s.out.close()
	}
	switch {
	case s.srv.shuttingDown():
		<-s.out.done() // drain replies in flight on a dedicated connection too; Close cuts this short
	case s.quit:
		s.awaitRepliesBeforeQuit()
	}
	s.finish()
	<-s.out.done()
	_ = s.conn.Close() // the reader holds no read now (see hangUp)
	if s.out.isOverflow() {
		s.srv.stats.outputOverflows.Add(1)
		if s.srv.tel != nil {
			s.srv.tel.OutputOverflow()
		}
		s.srv.log.Warn("client closed: output buffer limit reached", "client", s.addr, "limit", s.srv.cfg.Client.OutputBufferLimit)
	}
	s.srv.sessionEnded(s)
}

// readFailed ends the session after a read error: a protocol error gets its
// reply, as in Redis; replies already due are still delivered.
func (s *session) readFailed(err error) {
	var perr *resp.ProtocolError
	switch {
	case errors.As(err, &perr):
		if seq, ok := s.out.reserve(1<<30, slotMeta{start: time.Now(), name: "other", user: s.userLabel(), db: s.db}, nil, nil); ok {
			s.out.local(seq, resp.AppendError(nil, perr.Error()))
		}
		s.srv.log.Debug("protocol error", "client", s.addr, "error", perr.Msg)
	case errors.Is(err, resp.ErrTooLarge):
		s.srv.log.Warn("client closed: query buffer limit reached", "client", s.addr)
		s.out.close()
	case errors.Is(err, os.ErrDeadlineExceeded) && s.srv.shuttingDown():
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.srv.log.Debug("client idle timeout", "client", s.addr)
		s.out.close()
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		s.srv.log.Debug("client read error", "client", s.addr, "error", err)
	}
	s.out.closeWhenDone()
}

// awaitRepliesBeforeQuit waits, after QUIT, until the replies still owed
// on the dedicated connection are written, as Redis answers every command
// before QUIT, or until the client closes its end. Dropping the connection
// first would cut them off.
func (s *session) awaitRepliesBeforeQuit() {
	s.ded.mu.Lock()
	owed := s.ded.conn != nil && s.ded.conn.InFlight() > 0
	s.ded.mu.Unlock()
	if !owed {
		return
	}
	closed, stop := s.watchClose()
	defer stop()
	select {
	case <-s.out.done():
	case <-closed:
		s.out.close()
	}
}

// finish returns or destroys the dedicated connection.
func (s *session) finish() {
	if r := s.repl.Load(); r != nil {
		r.close()
	}
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	s.ded.dropConn()
}

// handle routes one command; false ends the session.
func (s *session) handle(ctx context.Context, cmd resp.Command) bool {
	pol := s.srv.policy.Load()
	if !s.refreshUser(pol) {
		return false
	}
	real, known := pol.Resolve(cmd.Args[0])
	if known && !bytes.Equal(real, cmd.Args[0]) {
		cmd.Args[0], cmd.Raw = real, nil // renamed: forward under Redis's name
	}
	w := s.scratch()
	cls := s.srv.models.get(pol.Commands()).classify(lowerName(w.name[:], cmd.Args[0]), cmd.Args)
	k, name := cls.kind, cls.name
	now := time.Now() // one clock read for CLIENT LIST's idle and the command's timing
	s.noteCommand(cls, cmd.Args, now)
	meta := slotMeta{start: now, name: name, user: s.userLabel(), db: s.db, upstream: true, mute: s.muted(cls, cmd.Args)}
	meta.muteOOB = meta.mute && s.repliesStreamApart(k)
	var d policy.Decision
	if known {
		if d = pol.Check(s.user, cmd.Args); !d.Allowed && !d.Audit {
			meta.decision = decisionDenied
		}
	}
	slot, cross, split, haveKeys := -1, false, false, false
	if s.srv.cluster != nil {
		w.keyIdx, haveKeys = s.srv.keys(cmd.Args, w.keyIdx[:0]), true
		if slot, cross = clusterSlot(name, cmd.Args, w.keyIdx); cross {
			_, split = splittable[name]
		}
	}
	g := s.srv.guard.Load()
	var ctxRefusal []byte
	if known && d.Forward() {
		ctxRefusal = s.pubsubRefusal(pol.Commands(), cls, cmd.Args, d, g)
	}
	var guardReject []byte
	if g != nil && known && d.Forward() && ctxRefusal == nil && !split { // a split command is guarded part by part
		meta.decision, guardReject = s.guardPlan(ctx, g, &cmd)
	}
	wantStmt := s.srv.tel != nil && s.srv.tel.StatementWanted()
	if (g != nil || wantStmt) && (!haveKeys || meta.decision == decisionRewritten) {
		// Key positions once per command (again only for a rewritten one), for
		// the guard's detectors and the statement.
		w.keyIdx = s.srv.keys(cmd.Args, w.keyIdx[:0])
	}
	var key []byte
	if g != nil && len(w.keyIdx) > 0 {
		key = cmd.Args[w.keyIdx[0]]
	}
	var stmt []byte
	if wantStmt {
		w.stmt = telemetry.FormatStatement(w.stmt[:0], s.srv.tel.StatementMode(), cmd.Args, w.keyIdx)
		stmt = w.stmt
	}
	if s.srv.tel != nil {
		s.trackTransaction(name, &meta, stmt)
	}
	seq, ok := s.out.reserve(s.srv.cfg.Client.MaxPending, meta, stmt, key)
	if !ok {
		return false
	}
	if known && d.Forward() && guardReject == nil && ctxRefusal == nil && !s.holdWhilePaused(pol.Commands(), name, cmd.Args) {
		s.out.local(seq, nil) // the session ends (shutdown, CLIENT KILL) while its command is held
		return false
	}
	switch {
	case !known:
		s.refuse(seq, unknownCommand(cmd.Args))
		return true
	case guardReject != nil:
		s.refuse(seq, guardReject)
		return true
	case !d.Forward():
		s.denied(name, d)
		if k == kindTxEnd && name == "exec" && s.abortTx(seq, resp.AppendError(nil, d.Err)) {
			return true // Redis discards the transaction when it rejects EXEC
		}
		s.refuse(seq, resp.AppendError(nil, d.Err))
		return true
	case ctxRefusal != nil:
		if d.Audit {
			s.denied(name, d)
		}
		s.refuse(seq, ctxRefusal)
		return true
	case d.Audit:
		s.denied(name, d)
	case d.Identity != "":
		s.runScriptAs(ctx, seq, d.Identity, cmd)
		return true
	}
	if s.ded.has(modeMulti) && (cls.inMulti == multiRefuse || cls.kind == kindUnsubscribe && s.ded.has(modeSubscribed)) {
		s.refuse(seq, multiRefusal(name))
		return true
	}
	if s.ded.has(modeMulti) && cls.inMulti == multiLocal {
		s.queueLocal(seq, cmd.Args)
		return true
	}
	if h := s.srv.afterCheck.Load(); h != nil {
		(*h)(s)
	}
	s.subs.note(name, cmd.Args)
	if done, keep := s.answer(ctx, seq, cls, &cmd); done {
		return keep
	}
	s.ded.mu.Lock()
	if s.ded.conn != nil && s.ded.conn.Err() != nil && s.ded.has(modeTracking) {
		// Its invalidations died with the connection: the client's cache can
		// no longer be trusted, so it must reconnect, as with Redis itself.
		err := s.ded.conn.Err()
		s.ded.mu.Unlock()
		s.out.local(seq, pool.UnavailableReply(err))
		return false
	}
	if s.ded.conn != nil && s.ded.conn.Err() != nil && !s.ded.stateful() {
		s.ded.dropConn() // died (e.g. Redis restarted) with no state to keep: start afresh
	}
	s.ded.mu.Unlock()
	return s.route(ctx, seq, cls, cmd, slot, cross)
}

// route routes a command that respguard does not answer itself: to the one
// upstream, or in cluster mode to the node serving its keys.
func (s *session) route(ctx context.Context, seq uint64, cls *commandClass, cmd resp.Command, slot int, cross bool) bool {
	if s.cl != nil {
		return s.handleCluster(ctx, seq, cls, cmd, slot, cross)
	}
	return s.routeStandalone(ctx, seq, cls, cmd)
}

// pubsubRefusal returns Redis's refusal of a command that a RESP2 client in
// Pub/Sub mode may not run, or nil. Redis refuses it after the unknown
// command, arity and ACL checks and before anything runs, naming it by its
// full lower-case name ("client|setname"), so respguard decides it there
// too: before it answers the command itself, rewrites it, runs it as a
// script user or forwards it. A command respguard would forward unchanged
// anyway is left to Redis, whose refusal then keeps its place among the
// subscription's replies (a local reply may overtake those still in
// flight). RESP3 clients may run any command while subscribed.
func (s *session) pubsubRefusal(table *policy.Commands, cls *commandClass, args [][]byte, d policy.Decision, g *guard.Guard) []byte {
	if cls.inPubSub || s.proto != 2 || !s.subs.active() {
		return nil
	}
	info := table.Info(args)
	if info == nil {
		return nil // an unknown (sub)command: Redis says so first
	}
	if cls.kind == kindForward && d.Identity == "" && s.ded.has(modeSubscribed) && !changedByGuard(g, args) {
		return nil
	}
	return resp.AppendError(nil, "ERR Can't execute '"+info.Name+"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
}

// changedByGuard reports whether g would not forward args as they are
// (a rewrite or a rejection) when nothing can be probed.
func changedByGuard(g *guard.Guard, args [][]byte) bool {
	if g == nil {
		return false
	}
	a := g.Plan(args, nil).Action
	return a == guard.Rewrite || a == guard.Reject
}

// routeStandalone routes a command to the one upstream: over a shared
// connection when the model allows it and the client holds no dedicated
// one, else over its dedicated connection.
func (s *session) routeStandalone(ctx context.Context, seq uint64, cls *commandClass, cmd resp.Command) bool {
	k, name := cls.kind, cls.name
	s.ded.mu.Lock()
	// A connection with no state and nothing in flight is given back now,
	// not when its reader gets round to it: which connection a command takes
	// (and so its command timeout) must not depend on that race.
	pinned := !s.ded.releaseIfIdle()
	s.ded.mu.Unlock()
	if k == kindInfo && !s.ded.has(modeStreaming) {
		s.infoWithSection(ctx, seq, cmd)
		return true
	}
	if !pinned && !s.needsPin(k, name, cmd) {
		s.forwardShared(ctx, seq, cmd)
		return true
	}
	return s.forwardPinned(ctx, seq, k, name, cmd)
}

// answer handles the commands respguard answers itself, refuses, or sends
// over a connection of their own. done=false means: route cmd upstream;
// keep=false ends the session.
func (s *session) answer(ctx context.Context, seq uint64, cls *commandClass, cmd *resp.Command) (done, keep bool) {
	switch cls.kind {
	case kindLocal, kindACL, kindTxEnd:
		return s.tryLocal(ctx, seq, cls.name, *cmd)
	case kindClient:
		return s.trackingCommand(ctx, seq, cmd), true
	case kindReplconf:
		s.replconf(ctx, seq, *cmd)
		return true, true
	case kindReplicate:
		return true, s.replicate(ctx, seq, cls.name, *cmd)
	case kindUnsubscribe:
		if !s.ded.has(modeSubscribed) {
			s.out.local(seq, unsubscribeReply(cls.name, cmd.Args, s.proto))
			return true, true
		}
	case kindControl:
		if !s.ded.has(modeMulti | modeStreaming) {
			s.control(ctx, seq, *cmd)
			return true, true
		}
	}
	return false, true
}

// multiRefusal is the refusal of a command that would change the
// connection's state from within EXEC.
func multiRefusal(name string) []byte {
	return resp.AppendError(nil, "ERR respguard: '"+name+"' is not supported inside MULTI: it changes the connection's state")
}

// refuse answers a command respguard will not run. Inside MULTI the
// transaction then aborts at EXEC, as when Redis rejects a command while
// queueing it.
func (s *session) refuse(seq uint64, reply []byte) {
	if s.ded.has(modeMulti) {
		s.ded.mu.Lock()
		s.ded.tx.refused = true
		s.ded.mu.Unlock()
	}
	s.out.local(seq, reply)
}

// abortTx ends an open transaction whose EXEC was rejected with reply, as
// Redis discards it; false: no transaction is open.
func (s *session) abortTx(seq uint64, reply []byte) bool {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if !s.ded.has(modeMulti) {
		return false
	}
	s.discardTx(seq, reply)
	return true
}

// discardTx answers an EXEC that respguard rejects with reply, and ends
// the transaction: DISCARD upstream (which also unwatches), its reply
// dropped. While the connection streams, DISCARD's reply is told from the
// streamed ones by count (see pool.Pipe.SendQuietAfter), and reply takes
// its place, after the replies to the commands queued before EXEC. Caller
// holds ded.mu.
func (s *session) discardTx(seq uint64, reply []byte) {
	c := s.ded.conn
	switch {
	case c != nil && s.ded.has(modeStreaming):
		after := s.ded.tx.streamedReplies
		if c.SendQuietAfter(&fixedReply{to: s.pinnedTarget(), reply: reply}, seq, after, []byte("DISCARD")) != nil {
			s.out.local(seq, reply) // the stream is aborted
		}
	case c != nil:
		_ = c.Send(nil, 0, nil, [][]byte{[]byte("DISCARD")})
		s.out.local(seq, reply)
	default:
		s.out.local(seq, reply)
	}
	s.ded.endTx()
}

// fixedReply is a pool.Target that answers its slot with reply, whatever
// the reply read: respguard's answer in the place of a command it sent for
// itself.
type fixedReply struct {
	to    pool.Target
	reply []byte
}

func (f *fixedReply) Deliver(seq uint64, _ []byte, last bool) {
	if last {
		f.to.Deliver(seq, f.reply, true)
	}
}

func (f *fixedReply) DeliverPush(p []byte, last bool) { f.to.DeliverPush(p, last) }

func (f *fixedReply) Abort(err error) { f.to.Abort(err) }

// needsPin reports whether an unpinned client must move to a dedicated
// connection for this command.
func (s *session) needsPin(k kind, name string, cmd resp.Command) bool {
	switch k {
	case kindMulti, kindWatch, kindSubscribe, kindMonitor, kindIsolated, kindUnknown:
		return true
	case kindBlocking:
		return isBlocking(name, cmd.Args)
	case kindClient:
		return clientStartsState(cmd.Args)
	}
	return false
}

// forwardShared sends a stateless command over a shared connection, in
// the client's order (see sendOrder).
func (s *session) forwardShared(ctx context.Context, seq uint64, cmd resp.Command) {
	pipe, err := s.srv.pool.Shared(ctx, s.db, s.proto, s.id)
	if err == nil {
		if held := s.order.held(s.out, pipe, s.db, s.proto); held != nil {
			if held.Send(s.out, seq, cmd.Raw, cmd.Args) == nil {
				s.order.before(s.out, held, s.db, s.proto, seq) // not a move
				return
			} // it closed, drained: nothing of the client's is left there
		}
		if !s.order.before(s.out, pipe, s.db, s.proto, seq) {
			return // the client is gone
		}
		err = pipe.Send(s.out, seq, cmd.Raw, cmd.Args)
	}
	if err != nil {
		s.out.local(seq, pool.UnavailableReply(err))
	}
}

// forwardPinned sends cmd over the client's dedicated connection, acquiring
// one first if needed, and tracks the connection state cmd creates or ends.
func (s *session) forwardPinned(ctx context.Context, seq uint64, k kind, name string, cmd resp.Command) bool {
	startsStream := (k == kindSubscribe || k == kindMonitor) && !s.ded.has(modeStreaming|modeMulti)
	s.ded.mu.Lock()
	unpinned := s.ded.conn == nil || s.ded.adopted
	var pipe *pool.Pipe
	if !unpinned {
		pipe = s.ded.conn.Pipe
	}
	s.ded.mu.Unlock()
	if unpinned || startsStream {
		// Moving to a connection about to be set up: the client's earlier
		// commands must have run first (see sendOrder); and before replies
		// stop being matched, all earlier ones must be in.
		s.out.waitBefore(seq)
	} else if !s.order.moveTo(s.out, pipe, s.proto) {
		return true // the client is gone
	}
	s.ded.mu.Lock()
	if s.ded.conn == nil {
		if err := s.acquire(ctx); err != nil {
			s.ded.mu.Unlock()
			s.out.local(seq, pool.UnavailableReply(err))
			return true
		}
	} else if s.ded.adopted {
		s.adopt()
	}
	s.order.sentOn(s.ded.conn.Pipe, s.proto, seq)
	if k == kindTxEnd && name == "exec" && s.ded.has(modeMulti) && len(s.ded.tx.locals) > 0 {
		return s.execSplicing(seq, cmd) // unlocks
	}
	if k == kindTxEnd && name == "exec" && s.ded.has(modeMulti) && len(s.ded.tx.selects) > 0 {
		return s.execApplying(seq, cmd) // unlocks
	}
	s.track(k, name, cmd)
	blocks := k == kindBlocking && isBlocking(name, cmd.Args) && !s.ded.has(modeMulti)
	defer s.ded.mu.Unlock()
	if (k == kindSubscribe || k == kindMonitor) && !s.ded.has(modeMulti) {
		// A subscriber may also MONITOR, and a monitor subscribe: each mode
		// is tracked whichever started the stream.
		s.ded.enter(streamMode(k))
	}
	if startsStream {
		s.ded.conn.StartStream(s.out)
	}
	switch {
	case s.ded.has(modeStreaming):
		return s.sendStreaming(seq, k, cmd, blocks)
	case blocks:
		return s.sendBlocking(seq, cmd)
	case k == kindIsolated:
		return s.sendChanging(seq, cmd)
	}
	return s.send(seq, cmd, true)
}

// sendBlocking writes a blocking command to the dedicated connection: the
// client is blocked in Redis until its reply arrives (see
// blockedCommands). Caller holds ded.mu.
func (s *session) sendBlocking(seq uint64, cmd resp.Command) bool {
	blocked := s.blockedRecord()
	blocked.sent(seq, s.lastCmd)
	if err := s.ded.conn.Send(&blocked.replies, seq, cmd.Raw, cmd.Args); err != nil {
		blocked.answered(seq)
		s.out.local(seq, pool.UnavailableReply(err))
	}
	return true
}

// blockedRecord returns the record of the client's blocking commands,
// made when first needed. Caller holds ded.mu.
func (s *session) blockedRecord() *blockedCommands {
	if s.ded.blocked == nil {
		s.ded.blocked = newBlockedCommands(s.pinnedTarget(), s.out)
	}
	return s.ded.blocked
}

// sendStreaming writes cmd to the streaming dedicated connection. Its
// replies arrive unmatched, through the stream; a marker sent after it
// completes its slot once they are in, so that a later reply respguard makes
// itself cannot overtake them. The marker that follows the UNSUBSCRIBE which
// leaves no subscription also ends streaming. A blocking command (a RESP3
// subscriber's BLPOP) blocks the client until its marker's reply arrives.
// Caller holds ded.mu.
func (s *session) sendStreaming(seq uint64, k kind, cmd resp.Command, blocks bool) bool {
	var target pool.Target = s.out
	if blocks {
		s.blockedRecord().sent(seq, s.lastCmd)
		target = &s.ded.blocked.marks
	}
	if err := s.ded.conn.Send(nil, seq, cmd.Raw, cmd.Args); err != nil {
		s.ded.blocked.reset() // none of the client's replies will come
		s.out.local(seq, pool.UnavailableReply(err))
		return true
	}
	if s.ded.has(modeMulti) { // a marker would be queued in the transaction
		s.ded.tx.streamedReplies++ // MULTI's +OK, or the command's +QUEUED or error
		s.out.local(seq, nil)
		return true
	}
	left := k == kindUnsubscribe && !s.subs.active()
	end := left && !s.ded.has(modeMonitoring)
	if err := s.ded.conn.Mark(target, seq, end, s.ded.has(modeMonitoring)); err != nil {
		s.ded.blocked.reset() // the stream is aborted
		s.out.local(seq, nil)
		return true
	}
	if left {
		s.ded.mode &^= modeSubscribed
	}
	return true
}

// streamMode is the connection mode a SUBSCRIBE-family command or MONITOR
// enters.
func streamMode(k kind) connMode {
	if k == kindMonitor {
		return modeMonitoring
	}
	return modeSubscribed
}

// send writes cmd to the dedicated connection. Caller holds ded.mu.
func (s *session) send(seq uint64, cmd resp.Command, matched bool) bool {
	return s.sendTo(s.replyTarget(matched), seq, cmd)
}

// sendChanging writes a command that changes connection state respguard
// does not track (kindIsolated) to the dedicated connection: the connection
// is destroyed, not reused, if Redis ran it, and stays reusable if Redis
// refused it (see pool.Pipe.SendChanging). Caller holds ded.mu.
func (s *session) sendChanging(seq uint64, cmd resp.Command) bool {
	if err := s.ded.conn.SendChanging(s.pinnedTarget(), seq, cmd.Raw, cmd.Args); err != nil {
		s.out.local(seq, pool.UnavailableReply(err))
	}
	return true
}

// replyTarget is where a dedicated connection's reply goes: the outbox
// (through the cluster filter in cluster mode), or nowhere when unmatched.
func (s *session) replyTarget(matched bool) pool.Target {
	if !matched {
		return nil
	}
	return s.pinnedTarget()
}

// pinnedTarget is where the dedicated connection's replies go: the outbox,
// through the cluster filter in cluster mode.
func (s *session) pinnedTarget() pool.Target {
	if s.cl != nil {
		return &s.cl.replies
	}
	return s.out
}

// sendTo writes cmd to the dedicated connection, its reply going to
// target. Caller holds ded.mu.
func (s *session) sendTo(target pool.Target, seq uint64, cmd resp.Command) bool {
	if err := s.ded.conn.Send(target, seq, cmd.Raw, cmd.Args); err != nil && target != nil {
		s.out.local(seq, pool.UnavailableReply(err))
	}
	return true
}

// track applies cmd's effect to the dedicated connection's state, before
// it is sent. Caller holds ded.mu.
func (s *session) track(k kind, name string, cmd resp.Command) {
	inMulti := s.ded.has(modeMulti)
	if inMulti && k != kindMulti && k != kindTxEnd && k != kindWatch {
		s.ded.tx.entries++ // Redis queues it: one element of EXEC's array
	}
	switch {
	case k == kindMulti:
		s.ded.enter(modeMulti)
	case k == kindTxEnd && inMulti:
		s.ded.endTx()
	case k == kindWatch && !inMulti:
		s.ded.watch()
	case k == kindUnwatch && !inMulti:
		s.ded.endWatch()
	case k == kindClient && clientSub(cmd.Args) == "tracking" && len(cmd.Args) > 2:
		s.applyTracking(!equalFold(cmd.Args[2], "off"))
	case k == kindUnknown:
		s.ded.conn.MarkDirty() // its effect is unknown: never reused
	}
}

// execApplying sends an EXEC whose transaction queued a SELECT, waits for
// its reply and applies what the reply says the transaction did: the one
// place where queued commands change the client's state. Caller holds
// ded.mu; execApplying releases it.
func (s *session) execApplying(seq uint64, cmd resp.Command) bool {
	s.ded.conn.MarkDirty() // its db is known only once the reply is in; never pooled on a guess
	exec := newExecOutcome(s.replyTarget(true), s.ded.tx.selects)
	s.sendTo(exec, seq, cmd)
	s.ded.endTx()
	s.ded.mu.Unlock()
	if s.out.waitBefore(seq+1) && exec.ran.Load() {
		s.applySelected(int(exec.db.Load()))
	}
	return true
}

// applySelected moves the client to db, the one a transaction's SELECTs
// chose (-1: none did). Reader goroutine, without ded.mu.
func (s *session) applySelected(db int) {
	if db < 0 {
		return
	}
	s.changeDB(db)
	s.ded.mu.Lock()
	if s.ded.conn != nil {
		s.ded.conn.DB = db
	}
	s.ded.mu.Unlock()
}

// acquire pins the client, which has no dedicated connection, to one in its
// db and protocol. Caller holds ded.mu, which is let go while the pool is
// waited on (up to its acquire timeout): CLIENT LIST, CLIENT KILL and
// redirecting clients take it, and must not wait for the pool. A connection
// pinned meanwhile (another client's REDIRECT, see becomeRedirectTarget) is
// kept and the new one given back. A hang-up (CLIENT KILL...) or the client
// closing its connection ends the wait.
func (s *session) acquire(ctx context.Context) error {
	p := s.srv.pool
	if s.cl != nil && s.cl.to != nil {
		p = s.cl.to
	}
	churn := s.ded.churn.delay(time.Now())
	s.ded.mu.Unlock()
	ctx, done := s.poolWait(ctx, p)
	err := waitChurn(ctx, churn)
	var c *pool.Conn
	if err == nil {
		c, err = s.dialDedicated(ctx, p, s.db, s.proto)
	}
	if err == nil && ctx.Err() != nil { // hung up as the connection came
		c.Release()
		err = ctx.Err()
	}
	done()
	s.ded.mu.Lock()
	switch {
	case err != nil:
		return err
	case s.ded.conn != nil:
		c.Release()
		if s.ded.adopted {
			s.adopt()
		}
		return nil
	}
	s.ded.conn = c
	return nil
}

// poolWait returns ctx for a wait of the session's reader for p, for its
// own connection or on another client's behalf (a REDIRECT target's): the
// wait ends, and the command is then not sent, when the session is hung up
// (CLIENT KILL, a revoked user, shutdown; see hangUp) or, when p is
// exhausted and the wait may be long, when the client closes its
// connection (it is then hung up): a BLPOP would otherwise take an element
// no client gets, and a REDIRECT pin a connection for no one. done ends
// that. Reader goroutine, without ded.mu.
func (s *session) poolWait(ctx context.Context, p *pool.Pool) (_ context.Context, done func()) {
	ctx, stopHangUp := s.untilHangUp(ctx)
	stopWatch := func() {}
	if p.Exhausted() {
		stopWatch = s.onClientClose(s.hangUp)
	}
	return ctx, func() {
		stopWatch()
		stopHangUp()
	}
}

// untilHangUp returns ctx for a wait of the session's reader (for the pool,
// for the replies to respguard's probes) that ends when the session is hung
// up (see hangUp). done ends that. Reader goroutine, without ded.mu.
func (s *session) untilHangUp(ctx context.Context) (_ context.Context, done func()) {
	ctx, stop := context.WithCancel(ctx)
	s.ded.stopWait.Store(&stop)
	return ctx, func() {
		s.ded.stopWait.Store(nil)
		stop()
	}
}

// dialDedicated takes a connection from p, set up in db and proto, whose
// replies go to the session.
func (s *session) dialDedicated(ctx context.Context, p *pool.Pool, db, proto int) (*pool.Conn, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if err := setUpConn(c, db, proto); err != nil {
		c.Release()
		return nil, err
	}
	c.SetOwner(s.out, s.releaseIfIdle)
	return c, nil
}

// releaseIfIdle runs on the dedicated pipe's reader goroutine after the last
// awaited reply: a client whose state has ended gives the connection back
// now rather than at its next command.
func (s *session) releaseIfIdle(p *pool.Pipe) {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if s.ded.conn != nil && s.ded.conn.Pipe == p {
		s.ded.releaseIfIdle()
	}
}

// equalFold reports whether b equals the lower-case ASCII word s, ignoring case.
func equalFold(b []byte, s string) bool { return bytes.EqualFold(b, []byte(s)) }

// clientStartsState reports CLIENT subcommands that need a dedicated connection.
func clientStartsState(args [][]byte) bool {
	return clientSub(args) == "tracking" && len(args) > 2 && equalFold(args[2], "on")
}

// scratch is the reader goroutine's working memory for one command at a
// time, kept while the client is active and let go when it parks (see
// shrink): an idle client holds none.
type scratch struct {
	name      [32]byte            // the command's lower-case name
	keyIdx    []int               // key argument indexes of the current command's args (see handle)
	guardArgs [][]byte            // the guard's rewrites
	stmt      []byte              // the command's redacted statement
	txQueued  []telemetry.Command // commands queued since MULTI, children of EXEC's span
	trackReq  trackingRequest     // the CLIENT TRACKING being routed
}

// scratch returns the session's scratch, made anew after it parked.
// Reader goroutine.
func (s *session) scratch() *scratch {
	if s.work == nil {
		s.work = new(scratch)
	}
	return s.work
}
