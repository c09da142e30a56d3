package proxy

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// Client-side caching with REDIRECT. A client names the respguard client
// that is to receive its invalidations (CLIENT TRACKING ON REDIRECT <id>);
// Redis knows only upstream connections. So the target is pinned to a
// dedicated connection (acquired for it on demand, if it holds none) that
// it keeps until it ends, and the command goes to Redis naming that
// connection's id. Redis then sends the invalidations to that connection,
// whose replies are the target's: pushes in RESP3, __redis__:invalidate
// messages to a RESP2 target that is subscribed, nothing to a RESP2 target
// that is not, as Redis does. When the target ends, its connection is
// destroyed, and Redis reports the redirection broken as it does when the
// target client goes (tracking-redir-broken pushes, with the id translated
// back). Replies naming the upstream id (CLIENT GETREDIR, CLIENT
// TRACKINGINFO) are translated back to the respguard id.

// errNoRedirectTarget is Redis's reply when the REDIRECT client does not exist.
const errNoRedirectTarget = "ERR The client ID you want redirect to does not exist"

// redirection is where a tracking client's invalidations go.
type redirection struct {
	id       uint64     // the target's respguard id
	upstream int64      // the target's dedicated connection's id in Redis
	pipe     *pool.Pipe // that connection: the redirection is broken once it ends
}

// broken reports whether the target's connection has ended (CLIENT LIST's R).
func (r *redirection) broken() bool { return r.pipe.Err() != nil }

// trackingRequest is what the last CLIENT TRACKING command asked for, from
// the reader goroutine's parse to track, which applies it.
type trackingRequest struct {
	redirect *redirection // nil: no REDIRECT
	bcast    bool
}

// trackingCommand handles CLIENT TRACKING, CLIENT GETREDIR and CLIENT
// TRACKINGINFO before they are routed: a REDIRECT names the target's
// upstream connection instead (or is refused as Redis refuses it), and
// replies naming the target are translated. done=false means: route cmd
// (perhaps rewritten) as usual.
func (s *session) trackingCommand(ctx context.Context, seq uint64, cmd *resp.Command) (done bool) {
	if s.srv.cluster != nil {
		return false // CLIENT TRACKING is refused in cluster mode
	}
	switch clientSub(cmd.Args) {
	case "tracking":
		return s.trackingRedirect(ctx, seq, cmd)
	case "getredir", "trackinginfo":
		return s.redirectReply(seq, cmd)
	}
	return false
}

// trackingRedirect parses CLIENT TRACKING's options as Redis 7.0 does,
// answering its errors up to and including an unknown REDIRECT target, and
// rewrites a REDIRECT to the target's upstream connection.
func (s *session) trackingRedirect(ctx context.Context, seq uint64, cmd *resp.Command) bool {
	req := &s.scratch().trackReq
	*req = trackingRequest{}
	if len(cmd.Args) < 3 {
		return false // Redis's arity error
	}
	at, id, bcast, errText := trackingOptions(cmd.Args, func(id int64) bool { return s.srv.client(id) != nil })
	req.bcast = bcast
	if errText != "" {
		s.out.local(seq, resp.AppendError(nil, errText))
		return true
	}
	if at == 0 {
		return false
	}
	ctx, done := s.poolWait(ctx, s.srv.pool) // the target may need a connection
	r, err := s.srv.redirectTo(ctx, id)
	done()
	if err != nil {
		s.out.local(seq, pool.UnavailableReply(err))
		return true
	}
	if r == nil {
		s.out.local(seq, resp.AppendError(nil, errNoRedirectTarget))
		return true
	}
	req.redirect = r
	args := append([][]byte(nil), cmd.Args...)
	args[at] = strconv.AppendInt(nil, r.upstream, 10)
	cmd.Args, cmd.Raw = args, nil
	return false
}

// trackingOptions walks CLIENT TRACKING's options as Redis 7.0's
// clientCommand does, stopping at the first error it reports while
// parsing (the checks made after parsing are left to Redis); exists tells
// whether a REDIRECT's client exists. at is the index of the REDIRECT id
// (0: none).
func trackingOptions(args [][]byte, exists func(int64) bool) (at int, id int64, bcast bool, errText string) {
	for j := 3; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case equalFold(args[j], "redirect") && more > 0:
			j++
			if at != 0 {
				return 0, 0, false, "ERR A client can only redirect to a single other client"
			}
			n, ok := resp.ParseInt(args[j])
			if !ok {
				return 0, 0, false, "ERR value is not an integer or out of range"
			}
			if !exists(n) {
				return 0, 0, false, errNoRedirectTarget
			}
			at, id = j, n
		case equalFold(args[j], "bcast"):
			bcast = true
		case equalFold(args[j], "optin"), equalFold(args[j], "optout"), equalFold(args[j], "noloop"):
		case equalFold(args[j], "prefix") && more > 0:
			j++
		default:
			return 0, 0, false, "ERR syntax error"
		}
	}
	return at, id, bcast, ""
}

// redirectTo makes the client with respguard id a redirect target and
// returns where its invalidations go; nil if there is no such client.
func (srv *Server) redirectTo(ctx context.Context, id int64) (*redirection, error) {
	if c := srv.client(id); c != nil {
		return c.becomeRedirectTarget(ctx)
	}
	return nil, nil
}

// client returns the live session with respguard id, or nil.
func (srv *Server) client(id int64) *session {
	for _, c := range srv.liveSessions() {
		if int64(c.id) == id && id > 0 && !c.gone.Load() {
			return c
		}
	}
	return nil
}

// becomeRedirectTarget pins the session to a dedicated connection, if it
// holds none, that it keeps from now on (see dedicated.redirTarget); nil if
// the session is ending. Safe from any goroutine: the connection is set up
// in the protocol and db the session last published, and its reader
// goroutine adjusts it before its next command there (see adopt).
func (s *session) becomeRedirectTarget(ctx context.Context) (*redirection, error) {
	s.view.mu.Lock()
	db, proto := s.view.db, s.view.proto
	s.view.mu.Unlock()
	var c *pool.Conn // acquired without ded.mu held (see acquire); given back unless installed
	defer func() {
		if c != nil {
			c.Release()
		}
	}()
	for {
		s.ded.mu.Lock()
		if s.gone.Load() {
			s.ded.mu.Unlock()
			return nil, nil // finish, which lets the connection go, comes after gone under ded.mu
		}
		if s.ded.conn == nil && c != nil {
			s.ded.conn, s.ded.adopted, c = c, true, nil
		}
		if s.ded.conn != nil {
			s.ded.redirTarget = true
			r := &redirection{id: s.id, upstream: s.ded.conn.ClientID(), pipe: s.ded.conn.Pipe}
			s.ded.mu.Unlock()
			return r, nil
		}
		s.ded.mu.Unlock()
		var err error
		if c, err = s.dialDedicated(ctx, s.srv.pool, db, proto); err != nil {
			return nil, err
		}
	}
}

// adopt readies a connection another client's REDIRECT pinned the
// session to, before its first command there. Caller holds ded.mu.
func (s *session) adopt() {
	s.ded.adopted = false
	_ = setUpConn(s.ded.conn, s.db, s.proto) // a dead connection fails the command sent next
}

// setUpConn selects db and protocol on c: the one place a dedicated
// connection is brought to the client's db and protocol, when pinned and
// when the client changes them (SELECT, HELLO; while streaming too: their
// replies are dropped, see pool.Pipe.SendQuiet).
func setUpConn(c *pool.Conn, db, proto int) error {
	if c.DB != db {
		if err := c.SendQuiet([]byte("SELECT"), strconv.AppendInt(nil, int64(db), 10)); err != nil {
			return err
		}
		c.DB = db
	}
	if c.Proto != proto {
		if err := c.SendQuiet([]byte("HELLO"), strconv.AppendInt(nil, int64(proto), 10)); err != nil {
			return err
		}
		c.Proto = proto
	}
	return nil
}

// applyTracking records CLIENT TRACKING ON or OFF and what the command
// asked for; the dedicated connection's pushes then go through the
// session's translator of tracking-redir-broken. Caller holds ded.mu.
func (s *session) applyTracking(on bool) {
	s.ded.setTracking(on)
	if !on {
		return
	}
	req := s.scratch().trackReq
	s.ded.redir, s.ded.bcast = req.redirect, req.bcast
	if s.ded.redir != nil {
		if s.redirPush == nil { // made once: a pipe's reader may be reading it
			s.redirPush = &redirectPushes{next: s.out}
		}
		s.redirPush.redir.Store(s.ded.redir)
		s.ded.conn.SetOwner(s.redirPush, s.releaseIfIdle)
	}
}

// redirectReply sends CLIENT GETREDIR or CLIENT TRACKINGINFO of a client
// that redirects over its dedicated connection, translating the target's
// upstream id in the reply.
func (s *session) redirectReply(seq uint64, cmd *resp.Command) bool {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	r := s.ded.redir
	if r == nil || s.ded.conn == nil || s.ded.has(modeMulti|modeStreaming) {
		return false
	}
	t := &redirectedReply{next: s.pinnedTarget(), redir: *r}
	if err := s.ded.conn.Send(t, seq, cmd.Raw, cmd.Args); err != nil {
		s.out.local(seq, pool.UnavailableReply(err))
	}
	return true
}

// redirectedReply is a pool.Target that holds a CLIENT GETREDIR or CLIENT
// TRACKINGINFO reply and passes it on with the redirect's upstream id
// replaced by its respguard id. One per command.
type redirectedReply struct {
	next  pool.Target
	redir redirection
	buf   []byte
}

func (t *redirectedReply) Deliver(seq uint64, p []byte, last bool) {
	t.buf = append(t.buf, p...)
	if last {
		t.next.Deliver(seq, translateRedirect(t.buf, &t.redir), true)
	}
}

func (t *redirectedReply) DeliverPush(p []byte, last bool) { t.next.DeliverPush(p, last) }

func (t *redirectedReply) Abort(err error) { t.next.Abort(err) }

// translateRedirect replaces the upstream id in GETREDIR's integer reply or
// TRACKINGINFO's redirect field (the first integer after "redirect": the
// flags before it are fixed words) by the respguard id.
func translateRedirect(reply []byte, r *redirection) []byte {
	up := strconv.AppendInt([]byte(":"), r.upstream, 10)
	up = append(up, "\r\n"...)
	id := strconv.AppendUint([]byte(":"), r.id, 10)
	id = append(id, "\r\n"...)
	if bytes.Equal(reply, up) {
		return id
	}
	field := []byte("redirect\r\n")
	return bytes.Replace(reply, append(field, up...), append(field, id...), 1)
}

// brokenPush is how a RESP3 tracking-redir-broken push starts; the
// upstream id of the target follows.
const brokenPush = ">2\r\n$21\r\ntracking-redir-broken\r\n:"

// redirectPushes passes a tracking client's pushes on, replacing the
// upstream id in tracking-redir-broken by the respguard id. Only the pipe's
// reader goroutine calls it; redir is set by the session.
type redirectPushes struct {
	next    pool.Target
	redir   atomic.Pointer[redirection]
	held    []byte // the start of a push that may be tracking-redir-broken
	passing bool   // the rest of the current push is not: pass it on
}

func (w *redirectPushes) Deliver(seq uint64, p []byte, last bool) { w.next.Deliver(seq, p, last) }

func (w *redirectPushes) Abort(err error) {
	w.held, w.passing = w.held[:0], false
	w.next.Abort(err)
}

func (w *redirectPushes) DeliverPush(p []byte, last bool) {
	if w.passing {
		w.passing = !last
		w.next.DeliverPush(p, last)
		return
	}
	w.held = append(w.held, p...)
	n := min(len(w.held), len(brokenPush))
	if string(w.held[:n]) != brokenPush[:n] {
		w.passing = !last
		w.next.DeliverPush(w.held, last)
		w.held = w.held[:0]
		return
	}
	if last {
		w.next.DeliverPush(w.translateBroken(w.held), true)
		w.held = w.held[:0]
	}
}

// translateBroken rewrites a whole tracking-redir-broken push.
func (w *redirectPushes) translateBroken(push []byte) []byte {
	r := w.redir.Load()
	up, err := strconv.ParseInt(string(bytes.TrimSuffix(push[len(brokenPush):], []byte("\r\n"))), 10, 64)
	if r == nil || err != nil || up != r.upstream {
		return push
	}
	return append(strconv.AppendUint([]byte(brokenPush), r.id, 10), "\r\n"...)
}
