package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
	"github.com/respguard/respguard/telemetry"
)

// session is one client connection. Its reader goroutine (serve) owns the
// request parser and every field not under dedMu; the outbox's writer
// goroutine owns writes to conn.
type session struct {
	srv  *Server
	conn net.Conn
	id   uint64
	addr string
	rd   *resp.RequestReader
	lim  *resp.Limits // rd's limits, from Server.requestLimits
	out  *outbox

	// Reader-goroutine state.
	db, proto int
	name      string
	nameBuf   [32]byte
	reply     []byte              // scratch for local replies
	keyIdx    []int               // key argument indexes of the current command's args (see handle)
	guardArgs [][]byte            // scratch for the guard's rewrites
	txQueued  []telemetry.Command // commands queued since MULTI, children of EXEC's span
	stmtBuf   []byte              // its redacted statement

	// Cluster mode (reader-goroutine state).
	pinTo   *pool.Pool // node the next dedicated connection comes from; nil: the one upstream
	pinSlot int        // slot the dedicated connection was acquired for (-1: keyless)
	pinned  pinnedReplies

	// dedMu guards the dedicated connection and the state that keeps it.
	// The pipe's reader goroutine takes it (releaseIfIdle) to return the
	// connection as soon as the last reply of a finished state is in. The
	// reader goroutine never waits on the outbox or the pool while holding it.
	// The state flags are written only by the reader goroutine (under dedMu),
	// so it may read them without the lock; ded itself it must lock to read.
	dedMu     sync.Mutex
	ded       *pool.Conn
	inMulti   bool
	watching  bool
	tracking  bool
	streaming bool // Pub/Sub, MONITOR or CLIENT REPLY OFF/SKIP: replies unmatched
	pendingDB int  // SELECT queued inside MULTI, applied at EXEC; -1 = none
	txDenied  bool // a command in this MULTI was denied by policy: EXEC aborts

	// Cluster mode: a transaction lives on the node of its first key.
	multiDeferred bool     // MULTI answered locally; no node chosen yet
	deferred      [][]byte // keyless commands queued before the first key (encoded)
	txSlot        int      // slot of the transaction's keys; -1 = none yet
	watchCount    int      // WATCH commands sent on the dedicated connection
	watchLost     bool     // watches were dropped (afterPinnedMove): EXEC must abort

	pol      *policy.Policy // policy the session last judged by
	user     *policy.User   // nil: not authenticated (the policy requires AUTH)
	userName atomic.Value   // string: user's name, read by Server.SetPolicy
	subs     subscriptions  // Pub/Sub subscriptions, read by Server.SetPolicy
}

func newSession(srv *Server, conn net.Conn, id uint64) *session {
	cc := srv.cfg.Client
	s := &session{
		srv: srv, conn: conn, id: id, addr: conn.RemoteAddr().String(),
		out:   newOutbox(cc.OutputBufferLimit, cc.OutputBufferSoftLimit, cc.OutputBufferSoftTime),
		proto: 2, pendingDB: -1, txSlot: -1, pinSlot: -1,
	}
	s.lim = srv.requestLimits()
	s.rd = resp.NewRequestReader(deadlineReader{s}, *s.lim)
	s.pinned = pinnedReplies{out: s.out, cl: srv.cluster}
	s.out.onDone = s.slotDone
	return s
}

// serve runs the session until the client leaves, errs, or the server stops.
func (s *session) serve(ctx context.Context) {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		_ = s.out.writeLoop(s.conn, s.srv.cfg.Client.WriteTimeout, s.srv.bytesOut)
		_ = s.conn.Close() // unblocks the reader
	}()
	defer func() {
		if r := recover(); r != nil {
			s.srv.log.Error("bug: session panicked", "client", s.addr, "panic", r, "stack", string(debug.Stack()))
			s.out.close()
		}
		if s.srv.shuttingDown() {
			<-writerDone // drain replies in flight on a dedicated connection too; Close cuts this short
		}
		s.finish()
		<-writerDone
		if s.out.isOverflow() {
			s.srv.stats.outputOverflows.Add(1)
			if s.srv.tel != nil {
				s.srv.tel.OutputOverflow()
			}
			s.srv.log.Warn("client closed: output buffer limit reached", "client", s.addr, "limit", s.srv.cfg.Client.OutputBufferLimit)
		}
	}()
	for {
		if lim := s.srv.requestLimits(); lim != s.lim { // Redis's limits changed
			s.lim = lim
			s.rd.SetLimits(*lim)
		}
		cmd, err := s.rd.ReadCommand()
		if err != nil {
			s.readFailed(err)
			return
		}
		if !s.handle(ctx, cmd) {
			s.out.closeWhenDone()
			return
		}
	}
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

// finish returns or destroys the dedicated connection.
func (s *session) finish() {
	s.dedMu.Lock()
	defer s.dedMu.Unlock()
	if s.ded == nil {
		return
	}
	if s.inMulti || s.watching || s.tracking || s.streaming || s.ded.InFlight() > 0 {
		s.ded.MarkDirty() // a blocked command or open state must not reach another client
	}
	s.ded.Release()
	s.ded = nil
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
	lower := lowerName(s.nameBuf[:], cmd.Args[0])
	k := commandKinds[string(lower)]
	name := s.srv.names.intern(lower)
	meta := slotMeta{start: time.Now(), name: name, user: s.userLabel(), db: s.db, upstream: true}
	var d policy.Decision
	if known {
		if d = pol.Check(s.user, cmd.Args); !d.Allowed && !d.Audit {
			meta.decision = decisionDenied
		}
	}
	slot, cross, split, haveKeys := -1, false, false, false
	if s.srv.cluster != nil {
		s.keyIdx, haveKeys = s.srv.keys(cmd.Args, s.keyIdx[:0]), true
		if slot, cross = clusterSlot(name, cmd.Args, s.keyIdx); cross {
			_, split = splittable[name]
		}
	}
	var guardReject []byte
	g := s.srv.guard.Load()
	if g != nil && known && d.Forward() && !split { // a split command is guarded part by part
		meta.decision, guardReject = s.guardPlan(ctx, g, &cmd)
	}
	wantStmt := s.srv.tel != nil && s.srv.tel.StatementWanted()
	if (g != nil || wantStmt) && (!haveKeys || meta.decision == decisionRewritten) {
		// Key positions once per command (again only for a rewritten one), for
		// the guard's detectors and the statement.
		s.keyIdx = s.srv.keys(cmd.Args, s.keyIdx[:0])
	}
	var key []byte
	if g != nil && len(s.keyIdx) > 0 {
		key = cmd.Args[s.keyIdx[0]]
	}
	var stmt []byte
	if wantStmt {
		s.stmtBuf = telemetry.FormatStatement(s.stmtBuf[:0], s.srv.tel.StatementMode(), cmd.Args, s.keyIdx)
		stmt = s.stmtBuf
	}
	if s.srv.tel != nil {
		s.trackTransaction(name, &meta, stmt)
	}
	seq, ok := s.out.reserve(s.srv.cfg.Client.MaxPending, meta, stmt, key)
	if !ok {
		return false
	}
	switch {
	case !known:
		s.out.local(seq, unknownCommand(cmd.Args))
		return true
	case guardReject != nil:
		s.out.local(seq, guardReject)
		return true
	case !d.Forward():
		s.denied(name, d)
		s.dedMu.Lock()
		if s.inMulti {
			s.txDenied = true // Redis discards the whole transaction at EXEC
		}
		s.dedMu.Unlock()
		s.out.local(seq, resp.AppendError(nil, d.Err))
		return true
	case d.Audit:
		s.denied(name, d)
	case d.Identity != "":
		s.runScriptAs(ctx, seq, d.Identity, cmd)
		return true
	}
	s.subs.note(name, cmd.Args)
	if k == kindLocal || k == kindClient || k == kindACL || k == kindTxEnd {
		if done, keep := s.tryLocal(ctx, seq, string(lower), cmd); done {
			return keep
		}
	}
	s.dedMu.Lock()
	if s.ded != nil && s.ded.Err() != nil && s.tracking {
		// Its invalidations died with the connection: the client's cache can
		// no longer be trusted, so it must reconnect, as with Redis itself.
		err := s.ded.Err()
		s.dedMu.Unlock()
		s.out.local(seq, pool.UnavailableReply(err))
		return false
	}
	if s.ded != nil && s.ded.Err() != nil && !s.stateful() {
		s.ded.Release() // died (e.g. Redis restarted) with no state to keep: start afresh
		s.ded = nil
	}
	pinned, streaming := s.ded != nil, s.streaming
	s.dedMu.Unlock()
	if s.srv.cluster != nil {
		return s.handleCluster(ctx, seq, k, name, cmd, slot, cross)
	}
	if k == kindInfo && !streaming {
		s.infoWithSection(ctx, seq, cmd)
		return true
	}
	if !pinned && !s.needsPin(k, string(lower), cmd) {
		s.forwardShared(ctx, seq, cmd)
		return true
	}
	return s.forwardPinned(ctx, seq, k, string(lower), cmd)
}

// needsPin reports whether an unpinned client must move to a dedicated
// connection for this command.
func (s *session) needsPin(k kind, name string, cmd resp.Command) bool {
	switch k {
	case kindMulti, kindWatch, kindSubscribe, kindMonitor:
		return true
	case kindBlocking:
		return isBlocking(name, cmd.Args)
	case kindClient:
		return clientStartsState(cmd.Args)
	}
	return false
}

// forwardShared sends a stateless command over a shared connection.
func (s *session) forwardShared(ctx context.Context, seq uint64, cmd resp.Command) {
	pipe, err := s.srv.pool.Shared(ctx, s.db, s.proto, s.id)
	if err == nil {
		err = pipe.Send(s.out, seq, cmd.Raw, cmd.Args)
	}
	if err != nil {
		s.out.local(seq, pool.UnavailableReply(err))
	}
}

// forwardPinned sends cmd over the client's dedicated connection, acquiring
// one first if needed, and tracks the connection state cmd creates or ends.
func (s *session) forwardPinned(ctx context.Context, seq uint64, k kind, name string, cmd resp.Command) bool {
	startsStream := k == kindSubscribe || k == kindMonitor || (k == kindClient && clientStopsReplies(cmd.Args))
	s.dedMu.Lock()
	streaming, inMulti, unpinned := s.streaming, s.inMulti, s.ded == nil
	s.dedMu.Unlock()
	if unpinned || startsStream && !streaming && !inMulti {
		// Moving to another connection: the commands already sent on the
		// shared one must have run first (their replies are in), so Redis
		// executes this client's commands in its order; and before replies
		// stop being matched, all earlier ones must be in.
		s.out.waitBefore(seq)
	}
	s.dedMu.Lock()
	defer s.dedMu.Unlock()
	if s.ded == nil {
		if err := s.acquire(ctx); err != nil {
			s.out.local(seq, pool.UnavailableReply(err))
			return true
		}
	}
	s.track(k, name, cmd)
	if startsStream && !s.streaming && !s.inMulti {
		s.streaming = true
		s.ded.StartStream(s.out)
		s.out.local(seq, nil) // the reply arrives unmatched, through the stream
		return s.send(seq, cmd, false)
	}
	if s.streaming {
		s.out.local(seq, nil)
		return s.send(seq, cmd, false)
	}
	return s.send(seq, cmd, true)
}

// send writes cmd to the dedicated connection. Caller holds dedMu.
func (s *session) send(seq uint64, cmd resp.Command, matched bool) bool {
	target := pool.Target(s.out)
	switch {
	case !matched:
		target = nil
	case s.srv.cluster != nil:
		target = &s.pinned
	}
	if err := s.ded.Send(target, seq, cmd.Raw, cmd.Args); err != nil && matched {
		s.out.local(seq, pool.UnavailableReply(err))
	}
	return true
}

// track updates the connection-state flags for cmd. Caller holds dedMu.
func (s *session) track(k kind, name string, cmd resp.Command) {
	switch k {
	case kindMulti:
		s.inMulti = true
	case kindTxEnd:
		if s.inMulti && name == "exec" && s.pendingDB >= 0 {
			s.db, s.ded.DB = s.pendingDB, s.pendingDB
		}
		s.inMulti, s.watching, s.pendingDB, s.txDenied, s.txSlot = false, false, -1, false, -1
		s.watchCount, s.watchLost = 0, false
	case kindWatch:
		if !s.inMulti {
			s.watching = true
			s.watchCount++
		}
	case kindUnwatch:
		if !s.inMulti {
			s.watching, s.txSlot, s.watchCount, s.watchLost = false, -1, 0, false
		}
	case kindClient:
		if clientSub(cmd.Args) == "tracking" && len(cmd.Args) > 2 {
			s.tracking = !equalFold(cmd.Args[2], "off")
		}
	}
}

// acquire pins the client to a dedicated connection in its db and protocol.
// Caller holds dedMu.
func (s *session) acquire(ctx context.Context) error {
	p := s.srv.pool
	if s.pinTo != nil {
		p = s.pinTo
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	if c.DB != s.db {
		if err := c.Send(nil, 0, nil, [][]byte{[]byte("SELECT"), fmt.Appendf(nil, "%d", s.db)}); err != nil {
			c.Release()
			return err
		}
		c.DB = s.db
	}
	if c.Proto != s.proto {
		if err := c.Send(nil, 0, nil, [][]byte{[]byte("HELLO"), fmt.Appendf(nil, "%d", s.proto)}); err != nil {
			c.Release()
			return err
		}
		c.Proto = s.proto
	}
	c.SetOwner(s.out, s.releaseIfIdle)
	s.ded = c
	return nil
}

// releaseIfIdle runs on the dedicated pipe's reader goroutine after the last
// awaited reply: a client whose state has ended gives the connection back
// now rather than at its next command.
func (s *session) releaseIfIdle(p *pool.Pipe) {
	s.dedMu.Lock()
	defer s.dedMu.Unlock()
	if s.ded == nil || s.ded.Pipe != p || s.stateful() || p.InFlight() > 0 {
		return
	}
	s.ded.Release()
	s.ded = nil
}

// stateful reports whether the dedicated connection holds client state.
// Caller holds dedMu.
func (s *session) stateful() bool {
	return s.inMulti || s.watching || s.tracking || s.streaming
}

// equalFold reports whether b equals the lower-case ASCII word s, ignoring case.
func equalFold(b []byte, s string) bool { return bytes.EqualFold(b, []byte(s)) }

// clientStartsState reports CLIENT subcommands that need a dedicated connection.
func clientStartsState(args [][]byte) bool {
	switch clientSub(args) {
	case "tracking":
		return len(args) > 2 && equalFold(args[2], "on")
	case "reply":
		return clientStopsReplies(args)
	}
	return false
}

// clientStopsReplies reports CLIENT REPLY OFF|SKIP.
func clientStopsReplies(args [][]byte) bool {
	return clientSub(args) == "reply" && len(args) > 2 && (equalFold(args[2], "off") || equalFold(args[2], "skip"))
}

// deadlineReader applies the client idle timeout to each read, except for
// clients holding a dedicated connection (Pub/Sub, blocked, in a
// transaction), which Redis does not time out either, and keeps a shutdown's
// immediate deadline in force.
type deadlineReader struct{ s *session }

func (d deadlineReader) Read(p []byte) (int, error) {
	s := d.s
	switch {
	case s.srv.shuttingDown():
		_ = s.conn.SetReadDeadline(time.Now())
	case s.srv.cfg.Client.IdleTimeout > 0:
		s.dedMu.Lock()
		pinned := s.ded != nil
		s.dedMu.Unlock()
		if pinned {
			_ = s.conn.SetReadDeadline(time.Time{})
		} else {
			_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.Client.IdleTimeout))
		}
	}
	n, err := s.conn.Read(p)
	if s.srv.tel != nil && n > 0 {
		s.srv.tel.BytesIn(n)
	}
	return n, err
}
