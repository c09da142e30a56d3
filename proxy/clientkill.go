package proxy

import (
	"context"
	"strconv"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// clientKill answers CLIENT KILL for respguard's clients, in both of Redis
// 7.0's forms: CLIENT KILL addr:port (+OK, or "No such client"), and the
// filters ID, TYPE, USER, ADDR, LADDR, SKIPME, MAXAGE (the number
// killed). The sessions it names are closed; when it names the caller,
// the caller's reply goes out first. It returns false when the caller
// itself is to close.
func (s *session) clientKill(ctx context.Context, seq uint64, args [][]byte) bool {
	match, skipMe, errText := s.clientKillFilter(args)
	if errText != "" {
		s.out.local(seq, resp.AppendError(nil, errText))
		return true
	}
	now := time.Now()
	killed, self := 0, false
	var busy []upstreamConn
	for _, c := range s.srv.clients() {
		if c == s && skipMe {
			continue
		}
		if st := c.state(now); !match(&st) {
			continue
		}
		killed++
		if c == s {
			self = true
		} else if up := c.kill(); up.pool != nil {
			busy = append(busy, up)
		}
	}
	s.killUpstream(ctx, busy)
	switch {
	case len(args) != 3:
		s.out.local(seq, resp.AppendInt(nil, int64(killed)))
	case killed == 0:
		s.out.local(seq, resp.AppendError(nil, "ERR No such client"))
	default:
		s.out.local(seq, resp.AppendSimple(nil, "OK"))
	}
	return !self
}

// upstreamConn names a dedicated connection in Redis.
type upstreamConn struct {
	pool *pool.Pool
	id   int64
}

// kill closes the session's connection at once, as CLIENT KILL does; its
// dedicated connection goes as the session ends. A command still running
// there (a BLPOP) is returned, to be ended in Redis too: the connection is
// marked so that it is destroyed, never reused.
func (s *session) kill() upstreamConn {
	s.gone.Store(true)
	var up upstreamConn
	s.ded.mu.Lock() // before the session can see its connection close and let the dedicated one go
	if c := s.ded.conn; c != nil && c.InFlight() > 0 && c.ClientID() != 0 {
		c.MarkDirty()
		up = upstreamConn{pool: c.Pool(), id: c.ClientID()}
	}
	s.ded.mu.Unlock()
	s.hangUp()
	return up
}

// killUpstream ends, in Redis, the commands killed clients were running,
// before CLIENT KILL answers: as when Redis kills a blocked client, no
// command sent after the kill is served to it (an RPUSH's element is not
// taken by a dead BLPOP). A failure is logged; those connections close
// anyway as their sessions end.
func (s *session) killUpstream(ctx context.Context, conns []upstreamConn) {
	for _, up := range conns {
		ctx, cancel := context.WithTimeout(ctx, controlTimeout)
		_, err := pool.NewControl(up.pool.Config()).Do(ctx, []string{"CLIENT", "KILL", "ID", strconv.FormatInt(up.id, 10)})
		cancel()
		if err != nil {
			s.srv.log.Warn("CLIENT KILL: could not end a killed client's command in Redis", "upstream_id", up.id, "error", err)
		}
	}
}

// clientKillFilter parses CLIENT KILL's arguments as Redis 7.0 does,
// returning the match, whether the caller is spared (SKIPME, yes by
// default in the filter form), or Redis's error text.
func (s *session) clientKillFilter(args [][]byte) (match func(*clientState) bool, skipMe bool, errText string) {
	if len(args) == 3 {
		addr := string(args[2])
		return func(c *clientState) bool { return c.addr == addr }, false, ""
	}
	if len(args) < 4 || len(args)%2 != 0 {
		return nil, false, "ERR syntax error"
	}
	var tests []func(*clientState) bool
	skipMe = true
	for i := 2; i < len(args); i += 2 {
		test, skip, errText := s.killOption(args[i], args[i+1])
		if errText != "" {
			return nil, false, errText
		}
		if skip != nil {
			skipMe = *skip
		}
		if test != nil {
			tests = append(tests, test)
		}
	}
	return func(c *clientState) bool {
		for _, t := range tests {
			if !t(c) {
				return false
			}
		}
		return true
	}, skipMe, ""
}

// killOption parses one filter of CLIENT KILL; SKIPME sets skip.
func (s *session) killOption(opt, val []byte) (test func(*clientState) bool, skip *bool, errText string) {
	str := string(val)
	switch {
	case equalFold(opt, "id"):
		id, ok := resp.ParseInt(val)
		if !ok || id < 1 {
			return nil, nil, "ERR client-id should be greater than 0"
		}
		return func(c *clientState) bool { return c.id == uint64(id) }, nil, ""
	case equalFold(opt, "type"):
		test, ok := clientTypeFilter(val)
		if !ok {
			return nil, nil, "ERR Unknown client type '" + str + "'"
		}
		return test, nil, ""
	case equalFold(opt, "addr"):
		return func(c *clientState) bool { return c.addr == str }, nil, ""
	case equalFold(opt, "laddr"):
		return func(c *clientState) bool { return c.laddr == str }, nil, ""
	case equalFold(opt, "user"):
		if s.srv.policy.Load().User(str) == nil {
			return nil, nil, "ERR No such user '" + str + "'"
		}
		return func(c *clientState) bool { return c.user == str }, nil, ""
	case equalFold(opt, "skipme"):
		yes, no := equalFold(val, "yes"), equalFold(val, "no")
		if !yes && !no {
			return nil, nil, "ERR syntax error"
		}
		return nil, &yes, ""
	case equalFold(opt, "maxage"):
		age, ok := resp.ParseInt(val)
		if !ok {
			return nil, nil, "ERR syntax error"
		}
		return func(c *clientState) bool { return age == 0 || c.age >= age }, nil, ""
	}
	return nil, nil, "ERR syntax error"
}

// clientUnblock answers CLIENT UNBLOCK id [TIMEOUT|ERROR] for respguard's
// clients: a client blocked on its dedicated connection is unblocked by
// sending CLIENT UNBLOCK, naming that connection's own id in Redis, over a
// connection of its own; Redis's reply (1, or 0 if the command had already
// finished) is the answer. Any other client: 0, as Redis answers for a
// client that is not blocked.
func (s *session) clientUnblock(ctx context.Context, seq uint64, args [][]byte) {
	if len(args) != 3 && len(args) != 4 {
		s.out.local(seq, resp.AppendError(nil, "ERR unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP."))
		return
	}
	if len(args) == 4 && !equalFold(args[3], "timeout") && !equalFold(args[3], "error") {
		s.out.local(seq, resp.AppendError(nil, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"))
		return
	}
	id, ok := resp.ParseInt(args[2])
	if !ok {
		s.out.local(seq, resp.AppendError(nil, "ERR value is not an integer or out of range"))
		return
	}
	from, upstreamID := s.srv.blockedUpstream(uint64(id))
	if from == nil {
		s.out.local(seq, resp.AppendInt(nil, 0))
		return
	}
	unblock := [][]byte{[]byte("CLIENT"), []byte("UNBLOCK"), strconv.AppendInt(nil, upstreamID, 10)}
	if len(args) == 4 {
		unblock = append(unblock, args[3])
	}
	s.sendOwn(ctx, from, s.out, seq, unblock)
}

// blockedUpstream finds the client with id blocked on its dedicated
// connection and returns the pool that connection came from and its id in
// Redis; nil if there is no such client. That connection is then
// destroyed, not pooled, once the client lets it go: should its command
// finish before the unblock arrives, the unblock finds no other client's
// command there.
func (srv *Server) blockedUpstream(id uint64) (*pool.Pool, int64) {
	for _, c := range srv.clients() {
		if c.id != id {
			continue
		}
		c.ded.mu.Lock()
		defer c.ded.mu.Unlock()
		if c.ded.blocked.running() == "" || c.ded.conn == nil || c.ded.conn.ClientID() == 0 {
			return nil, 0
		}
		c.ded.conn.MarkDirty() // never serves another client, whom the unblock could reach
		return c.ded.conn.Pool(), c.ded.conn.ClientID()
	}
	return nil, 0
}
