package proxy

import (
	"context"
	"math"
	"strconv"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/proxy/resp"
)

// tryLocal answers the connection-scoped commands respguard owns: their
// upstream answers would be wrong on a shared connection. done=false means
// the command is to be forwarded after all (e.g. SELECT inside MULTI);
// keep=false ends the session.
func (s *session) tryLocal(ctx context.Context, seq uint64, name string, cmd resp.Command) (done, keep bool) {
	streaming := s.ded.has(modeStreaming)
	switch name {
	case "quit":
		s.quit = true
		s.out.local(seq, resp.AppendSimple(nil, "OK"))
		s.out.closeWhenDone()
		return true, false
	case "reset":
		s.reset(seq)
		return true, true
	case "auth":
		s.out.local(seq, s.authenticate(cmd.Args))
		return true, true
	case "exec":
		return s.execAfterLostWatch(seq) || s.execAfterRefusal(seq), true
	case "acl":
		if len(cmd.Args) < 2 {
			return false, true
		}
		switch policy.ACLSubcommand(cmd.Args[1]) {
		case policy.ACLLocal:
			if s.ded.has(modeMulti) {
				s.queueLocal(seq, cmd.Args) // answered when EXEC runs, in its place (arity is checked before)
			} else {
				s.out.local(seq, s.aclLocal(cmd.Args))
			}
			return true, true
		case policy.ACLRefuse:
			s.refuse(seq, resp.AppendError(nil, policy.ACLRefusalText(cmd.Args[1])))
			return true, true
		}
	case "hello":
		s.out.local(seq, s.hello(cmd.Args))
		s.syncConn()
		return true, true
	case "select":
		return s.selectDB(seq, cmd.Args), true
	case "respguard":
		s.out.local(seq, s.respguard(ctx, cmd.Args))
		return true, true
	case "client":
		switch clientSub(cmd.Args) {
		case "setname":
			s.out.local(seq, s.setName(cmd.Args))
			return true, true
		case "getname":
			s.out.local(seq, s.getName(cmd.Args))
			return true, true
		case "id", "info", "list":
			if streaming {
				return false, true
			}
			s.out.local(seq, s.clientLocal(cmd.Args))
			return true, true
		case "kill":
			return true, s.clientKill(ctx, seq, cmd.Args)
		case "unblock":
			s.clientUnblock(ctx, seq, cmd.Args)
			return true, true
		case "pause":
			s.out.local(seq, s.clientPause(cmd.Args))
			return true, true
		case "unpause":
			s.out.local(seq, s.clientUnpause(cmd.Args))
			return true, true
		case "no-evict":
			s.out.local(seq, s.clientNoEvict(cmd.Args))
			return true, true
		case "reply":
			s.out.local(seq, s.clientReply(cmd.Args))
			return true, true
		}
	}
	return false, true
}

func wrongArgs(name string) []byte {
	return resp.AppendError(nil, "ERR wrong number of arguments for '"+name+"' command")
}

// reset implements RESET: every piece of connection state goes, and so does
// the dedicated connection that held it.
func (s *session) reset(seq uint64) {
	s.ded.mu.Lock()
	streaming, pinned := s.ded.has(modeStreaming), s.ded.conn != nil
	s.ded.mu.Unlock()
	if streaming {
		s.ded.mu.Lock()
		err := s.ded.conn.SendReset(s.out, seq)
		s.ded.mu.Unlock()
		if err != nil {
			s.out.local(seq, resp.AppendSimple(nil, "RESET"))
		}
		s.out.waitBefore(seq + 1) // the "+RESET" reply ends the stream
	} else {
		if pinned {
			s.out.waitBefore(seq)
		}
		s.out.local(seq, resp.AppendSimple(nil, "RESET"))
	}
	s.ded.mu.Lock()
	s.ded.destroy()
	s.ded.mu.Unlock()
	s.db, s.proto, s.name, s.replyMode = 0, 2, "", replyOn
	s.setUser(nil)
	s.pol = nil // refreshUser gives the default user back, if it needs no password
}

// execAfterRefusal answers EXEC for a transaction in which a command was
// refused: Redis's EXECABORT, and DISCARD upstream so nothing queued runs.
func (s *session) execAfterRefusal(seq uint64) (done bool) {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if !s.ded.has(modeMulti) || !s.ded.tx.refused {
		return false
	}
	s.discardTx(seq, resp.AppendError(nil, policy.ExecAbortText))
	return true
}

// unsubscribeReply answers UNSUBSCRIBE, PUNSUBSCRIBE or SUNSUBSCRIBE from a
// client that is not subscribed, with Redis's replies: one per channel (or
// one with a null channel when none is named), each counting 0
// subscriptions; pushes in RESP3.
func unsubscribeReply(name string, args [][]byte, proto int) []byte {
	var b []byte
	channels := args[1:]
	if len(channels) == 0 {
		channels = [][]byte{nil}
	}
	for _, ch := range channels {
		b = appendPushHeader(b, 3, proto)
		b = resp.AppendBulkString(b, name)
		if ch == nil {
			b = resp.AppendNull(b, proto)
		} else {
			b = resp.AppendBulk(b, ch)
		}
		b = resp.AppendInt(b, 0)
	}
	return b
}

// appendPushHeader appends a push header (RESP3) or an array header (RESP2).
func appendPushHeader(b []byte, n, proto int) []byte {
	if proto >= 3 {
		return append(strconv.AppendInt(append(b, '>'), int64(n), 10), '\r', '\n')
	}
	return resp.AppendArray(b, n)
}

// hello answers HELLO [protover [AUTH user pass] [SETNAME name]] with the
// upstream's server version, as Redis 7 formats it.
func (s *session) hello(args [][]byte) []byte {
	proto := s.proto
	if len(args) >= 2 {
		v, ok := resp.ParseInt(args[1])
		if !ok {
			return resp.AppendError(nil, "ERR Protocol version is not an integer or out of range")
		}
		if v < 2 || v > 3 {
			return resp.AppendError(nil, "NOPROTO unsupported protocol version")
		}
		proto = int(v)
	}
	var authArgs [][]byte
	var newName []byte
	setName := false
	for j := 2; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case equalFold(args[j], "auth") && more >= 2:
			authArgs = [][]byte{[]byte("AUTH"), args[j+1], args[j+2]}
			j += 2
		case equalFold(args[j], "setname") && more >= 1:
			newName, setName = args[j+1], true
			j++
		default:
			return resp.AppendError(nil, "ERR Syntax error in HELLO option '"+string(cString(args[j], len(args[j])))+"'")
		}
	}
	if authArgs != nil {
		if r := s.authenticate(authArgs); r[0] == '-' {
			return r
		}
	} else if s.user == nil {
		return resp.AppendError(nil, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	if setName {
		if msg := validClientName(newName); msg != "" {
			return resp.AppendError(nil, msg)
		}
		s.changeName(string(newName))
	}
	if proto != s.proto {
		s.changeProto(proto) // the dedicated connection follows: see syncConn
	}
	return s.helloReply()
}

func (s *session) helloReply() []byte {
	info := s.srv.upstreamInfo()
	b := resp.AppendMap(nil, 7, s.proto)
	b = resp.AppendBulkString(b, "server")
	b = resp.AppendBulkString(b, "redis")
	b = resp.AppendBulkString(b, "version")
	b = resp.AppendBulkString(b, info.Version)
	b = resp.AppendBulkString(b, "proto")
	b = resp.AppendInt(b, int64(s.proto))
	b = resp.AppendBulkString(b, "id")
	b = resp.AppendInt(b, int64(s.id))
	b = resp.AppendBulkString(b, "mode")
	b = resp.AppendBulkString(b, info.Mode)
	b = resp.AppendBulkString(b, "role")
	b = resp.AppendBulkString(b, info.Role)
	b = resp.AppendBulkString(b, "modules")
	return resp.AppendArray(b, 0)
}

// selectDB answers SELECT locally after checking the index. Inside MULTI
// the command is queued upstream, where Redis answers it in EXEC's array,
// and a valid index takes effect if its own element there is +OK (see
// txState.queueSelect).
func (s *session) selectDB(seq uint64, args [][]byte) (done bool) {
	if len(args) != 2 {
		s.out.local(seq, wrongArgs("select"))
		return true
	}
	db, errText := s.selectIndex(args[1])
	if s.ded.has(modeMulti) && s.ded.has(modeStreaming) {
		// EXEC's reply would stream unmatched: whether the transaction ran,
		// and so the db, could not be known.
		s.refuse(seq, multiRefusal("select"))
		return true
	}
	if s.ded.has(modeMulti) {
		if errText == "" {
			s.ded.mu.Lock()
			s.ded.tx.queueSelect(db)
			s.ded.mu.Unlock()
		}
		return false
	}
	if errText != "" {
		s.out.local(seq, resp.AppendError(nil, errText))
		return true
	}
	s.changeDB(db)
	s.out.local(seq, resp.AppendSimple(nil, "OK"))
	s.syncConn()
	return true
}

// selectIndex checks SELECT's index as Redis 7.0's selectCommand does, in
// its order: an integer (string2ll), within int, 0 in cluster mode, below
// the upstream's databases. errText is Redis's error, or "".
func (s *session) selectIndex(arg []byte) (db int, errText string) {
	n, ok := resp.ParseInt(arg)
	switch {
	case !ok:
		return 0, "ERR value is not an integer or out of range"
	case n < math.MinInt32 || n > math.MaxInt32:
		return 0, "ERR value is out of range, value must between -2147483648 and 2147483647"
	case s.srv.cluster != nil && n != 0:
		return 0, clusterSelect
	case n < 0 || n >= int64(s.srv.databases()):
		return 0, "ERR DB index is out of range"
	}
	return int(n), ""
}

// syncConn brings the dedicated connection, if the client holds one, to
// the client's db and protocol, behind the commands already sent there (a
// dead connection fails the command sent next). It runs after the command
// that changed them has its reply: on a MONITOR stream, Redis's line for
// the command sent must come after that reply.
func (s *session) syncConn() {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if c := s.ded.conn; c != nil {
		_ = setUpConn(c, s.db, s.proto)
	}
}

// validClientName returns Redis's error text for a bad name, or "".
func validClientName(name []byte) string {
	for _, c := range name {
		if c < '!' || c > '~' {
			return "ERR Client names cannot contain spaces, newlines or special characters."
		}
	}
	return ""
}

func (s *session) setName(args [][]byte) []byte {
	if len(args) != 3 {
		return wrongArgs("client|setname")
	}
	if msg := validClientName(args[2]); msg != "" {
		return resp.AppendError(nil, msg)
	}
	s.changeName(string(args[2]))
	return resp.AppendSimple(nil, "OK")
}

func (s *session) getName(args [][]byte) []byte {
	if len(args) != 2 {
		return wrongArgs("client|getname")
	}
	if s.name == "" {
		return resp.AppendNull(nil, s.proto)
	}
	return resp.AppendBulkString(nil, s.name)
}
