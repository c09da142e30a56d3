package proxy

import (
	"context"
	"strconv"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/proxy/resp"
)

// tryLocal answers the connection-scoped commands respguard owns: their
// upstream answers would be wrong on a shared connection. done=false means
// the command is to be forwarded after all (e.g. SELECT inside MULTI);
// keep=false ends the session.
func (s *session) tryLocal(ctx context.Context, seq uint64, name string, cmd resp.Command) (done, keep bool) {
	s.dedMu.Lock()
	pinned, streaming, inMulti := s.ded != nil, s.streaming, s.inMulti
	s.dedMu.Unlock()
	switch name {
	case "quit":
		s.out.local(seq, resp.AppendSimple(nil, "OK"))
		s.out.closeWhenDone()
		return true, false
	case "reset":
		s.reset(seq, pinned, streaming)
		return true, true
	case "auth":
		s.out.local(seq, s.authenticate(cmd.Args))
		return true, true
	case "exec":
		return s.execAfterLostWatch(seq) || s.execAfterDenial(seq), true
	case "acl":
		if len(cmd.Args) < 2 {
			return false, true
		}
		switch policy.ACLSubcommand(cmd.Args[1]) {
		case policy.ACLLocal:
			s.out.local(seq, s.aclLocal(cmd.Args))
			return true, true
		case policy.ACLRefuse:
			s.out.local(seq, resp.AppendError(nil, policy.ACLRefusalText(cmd.Args[1])))
			return true, true
		}
	case "hello":
		if streaming || inMulti {
			return false, true
		}
		s.out.local(seq, s.hello(cmd.Args))
		return true, true
	case "select":
		if streaming {
			return false, true
		}
		return s.selectDB(seq, cmd.Args, inMulti), true
	case "client":
		switch clientSub(cmd.Args) {
		case "setname":
			s.out.local(seq, s.setName(cmd.Args))
			return true, true
		case "getname":
			s.out.local(seq, s.getName(cmd.Args))
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
func (s *session) reset(seq uint64, pinned, streaming bool) {
	if streaming {
		s.dedMu.Lock()
		err := s.ded.SendReset(s.out, seq)
		s.dedMu.Unlock()
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
	s.dedMu.Lock()
	if s.ded != nil {
		s.ded.MarkDirty()
		s.ded.Release()
		s.ded = nil
	}
	s.inMulti, s.watching, s.tracking, s.streaming, s.pendingDB = false, false, false, false, -1
	s.multiDeferred, s.deferred, s.txSlot, s.txDenied = false, nil, -1, false
	s.watchCount, s.watchLost = 0, false
	s.dedMu.Unlock()
	s.db, s.proto, s.name = 0, 2, ""
	s.setUser(nil)
	s.pol = nil // refreshUser gives the default user back, if it needs no password
}

// execAfterDenial answers EXEC for a transaction in which the policy denied
// a command: Redis's EXECABORT, and DISCARD upstream so nothing queued runs.
func (s *session) execAfterDenial(seq uint64) (done bool) {
	s.dedMu.Lock()
	defer s.dedMu.Unlock()
	if !s.inMulti || !s.txDenied || s.ded == nil {
		return false
	}
	_ = s.ded.Send(nil, 0, nil, [][]byte{[]byte("DISCARD")})
	s.inMulti, s.watching, s.txDenied, s.pendingDB, s.txSlot = false, false, false, -1, -1
	s.out.local(seq, resp.AppendError(nil, policy.ExecAbortText))
	return true
}

// hello answers HELLO [protover [AUTH user pass] [SETNAME name]] with the
// upstream's server version, as Redis 7 formats it.
func (s *session) hello(args [][]byte) []byte {
	proto := s.proto
	if len(args) >= 2 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			return resp.AppendError(nil, "ERR Protocol version is not an integer or out of range")
		}
		if v < 2 || v > 3 {
			return resp.AppendError(nil, "NOPROTO unsupported protocol version")
		}
		proto = v
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
		s.name = string(newName)
	}
	if proto != s.proto {
		s.dedMu.Lock()
		if s.ded != nil {
			if err := s.ded.Send(nil, 0, nil, [][]byte{[]byte("HELLO"), []byte(strconv.Itoa(proto))}); err == nil {
				s.ded.Proto = proto
			}
		}
		s.dedMu.Unlock()
		s.proto = proto
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

// selectDB answers SELECT locally after checking the index; inside MULTI the
// command is queued upstream and takes effect at EXEC.
func (s *session) selectDB(seq uint64, args [][]byte, inMulti bool) (done bool) {
	if len(args) != 2 {
		s.out.local(seq, wrongArgs("select"))
		return true
	}
	db, err := strconv.Atoi(string(args[1]))
	if err != nil {
		s.out.local(seq, resp.AppendError(nil, "ERR value is not an integer or out of range"))
		return true
	}
	if s.srv.cluster != nil && db != 0 {
		s.out.local(seq, resp.AppendError(nil, clusterSelect))
		return true
	}
	if db < 0 || db >= s.srv.databases() {
		s.out.local(seq, resp.AppendError(nil, "ERR DB index is out of range"))
		return true
	}
	if inMulti {
		s.dedMu.Lock()
		s.pendingDB = db
		s.dedMu.Unlock()
		return false
	}
	s.dedMu.Lock()
	if s.ded != nil && s.ded.DB != db {
		if err := s.ded.Send(nil, 0, nil, [][]byte{[]byte("SELECT"), args[1]}); err == nil {
			s.ded.DB = db
		}
	}
	s.dedMu.Unlock()
	s.db = db
	s.out.local(seq, resp.AppendSimple(nil, "OK"))
	return true
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
	s.name = string(args[2])
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
