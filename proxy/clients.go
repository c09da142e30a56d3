package proxy

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/respguard/respguard/proxy/resp"
)

// clientView is what other sessions may read of a session (CLIENT LIST,
// CLIENT KILL, INFO clients). The session's reader goroutine publishes it
// after each command; mu guards every field but lastAt, and only the
// reader goroutine writes them (so it may read them without mu).
type clientView struct {
	mu        sync.Mutex
	name      string
	db, proto int
	cmd       string // the last command's full name ("client|list")

	lastAt atomic.Int64 // when the last command came, in Unix nanoseconds
}

// counts returns how many channels, patterns and shard channels the client
// is subscribed to (CLIENT LIST's sub, psub and ssub).
func (s *subscriptions) counts() (sub, psub, ssub int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sets[subChannel]), len(s.sets[subPattern]), len(s.sets[subShard])
}

// noteCommand records the command about to run, read at now, for CLIENT
// LIST's cmd and idle fields, and publishes it.
func (s *session) noteCommand(cls *commandClass, args [][]byte, now time.Time) {
	s.view.lastAt.Store(now.UnixNano())
	if !cls.container || len(args) < 2 {
		if s.lastCmd != cls.name {
			s.lastCmd = cls.name
		}
	} else {
		var buf, sub [32]byte
		full := append(append(append(buf[:0], cls.name...), '|'), lowerName(sub[:], args[1])...)
		if s.lastCmd != string(full) {
			s.lastCmd = string(full)
		}
	}
	s.publish() // before any reply: CLIENT LIST shows the command at once
}

// changeName, changeDB and changeProto change what CLIENT LIST shows of
// the client and publish it at once, before the command's reply can reach
// the client: a CLIENT LIST another client sends once it has that reply
// sees the change, as with Redis. Reader goroutine.
func (s *session) changeName(name string) { s.name = name; s.publish() }
func (s *session) changeDB(db int)        { s.db = db; s.publish() }
func (s *session) changeProto(proto int)  { s.proto = proto; s.publish() }

// publish copies the reader goroutine's state into the view under mu,
// when it changed (seldom); the time of the last command goes to the view
// directly (see noteCommand).
func (s *session) publish() {
	v := &s.view
	if v.name == s.name && v.db == s.db && v.proto == s.proto && v.cmd == s.lastCmd {
		return
	}
	v.mu.Lock()
	v.name, v.db, v.proto, v.cmd = s.name, s.db, s.proto, s.lastCmd
	v.mu.Unlock()
}

// clientState is one client as CLIENT LIST describes it.
type clientState struct {
	id                  uint64
	addr, laddr         string
	fd                  int
	name, user          string
	age, idle           int64
	flags               string
	db, sub, psub, ssub int
	multi               int
	omem                int64
	cmd                 string
	redir               int64
	proto               int
	blocked, tracking   bool
	replica             bool // SYNC/PSYNC: a replication stream
}

// pubsub reports whether the client is subscribed to anything (Redis's P flag).
func (c *clientState) pubsub() bool { return c.sub+c.psub+c.ssub > 0 }

// state describes the session now, from its published view and its
// dedicated connection. Safe from any goroutine.
func (s *session) state(now time.Time) clientState {
	c := clientState{id: s.id, addr: s.addr, laddr: s.conn.LocalAddr().String(), fd: int(s.fd), multi: -1, redir: -1}
	v := &s.view
	v.mu.Lock()
	c.name, c.db, c.proto, c.cmd = v.name, v.db, v.proto, v.cmd
	v.mu.Unlock()
	// Read live, not from the view: a subscription is recorded before its
	// command is forwarded, so a client that has its SUBSCRIBE reply is
	// already counted (published only after the command, it might not be).
	c.sub, c.psub, c.ssub = s.subs.counts()
	c.idle = int64(now.Sub(time.Unix(0, v.lastAt.Load())) / time.Second)
	c.age = int64(now.Sub(time.Unix(0, s.started)) / time.Second)
	c.user = *s.userName.Load()
	if c.user == "" {
		c.user = "default"
	}
	s.ded.mu.Lock()
	inMulti := s.ded.has(modeMulti)
	c.tracking = s.ded.has(modeTracking)
	redir, bcast := s.ded.redir, s.ded.bcast
	broken := c.tracking && redir != nil && redir.broken()
	if running := s.ded.blocked.running(); running != "" && s.ded.conn != nil {
		c.blocked, c.cmd = true, running // Redis shows the command it runs, not those pipelined behind
	}
	c.blocked = c.blocked || s.pause.waiting.Load()
	if inMulti {
		c.multi = s.ded.tx.entries
	}
	s.ded.mu.Unlock()
	if c.tracking {
		c.redir = 0
		if redir != nil {
			c.redir = int64(redir.id)
		}
	}
	c.omem = int64(s.out.heldNow())
	c.flags = clientFlags(c.pubsub(), inMulti, c.blocked, c.tracking, broken, c.tracking && bcast)
	if c.replica = s.replicaHandedOver(); c.replica {
		c.flags = "S" + strings.TrimPrefix(c.flags, "N") // Redis spells a replica's flag first
	}
	if s.noEvict.Load() {
		c.flags = strings.TrimSuffix(c.flags, "N") + "e" // ...and no-evict's last
	}
	return c
}

// clientFlags spells the flags CLIENT LIST shows, in Redis's order
// (broken: R, the redirect target is gone; bcast: B, tracking in BCAST mode).
func clientFlags(pubsub, multi, blocked, tracking, broken, bcast bool) string {
	var f []byte
	for _, on := range []struct {
		yes bool
		c   byte
	}{{pubsub, 'P'}, {multi, 'x'}, {blocked, 'b'}, {tracking, 't'}, {broken, 'R'}, {bcast, 'B'}} {
		if on.yes {
			f = append(f, on.c)
		}
	}
	if len(f) == 0 {
		return "N"
	}
	return string(f)
}

// appendClientLine appends c as one line of CLIENT LIST, in Redis 7.0's
// field order. The memory figures are respguard's own: omem is the
// memory held for the client's replies; respguard keeps no per-client query buffer.
func appendClientLine(b []byte, c *clientState) []byte {
	b = append(b, "id="...)
	b = strconv.AppendUint(b, c.id, 10)
	b = append(b, " addr="...)
	b = append(b, c.addr...)
	b = append(b, " laddr="...)
	b = append(b, c.laddr...)
	b = append(b, " fd="...)
	b = strconv.AppendInt(b, int64(c.fd), 10)
	b = append(b, " name="...)
	b = append(b, c.name...)
	b = appendKV(b, " age=", c.age)
	b = appendKV(b, " idle=", c.idle)
	b = append(b, " flags="...)
	b = append(b, c.flags...)
	b = appendKV(b, " db=", int64(c.db))
	b = appendKV(b, " sub=", int64(c.sub))
	b = appendKV(b, " psub=", int64(c.psub))
	b = appendKV(b, " ssub=", int64(c.ssub))
	b = appendKV(b, " multi=", int64(c.multi))
	b = append(b, " qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0"...)
	b = appendKV(b, " omem=", c.omem)
	b = appendKV(b, " tot-mem=", c.omem)
	b = append(b, " events=r cmd="...)
	b = append(b, c.cmd...)
	b = append(b, " user="...)
	b = append(b, c.user...)
	b = appendKV(b, " redir=", c.redir)
	b = appendKV(b, " resp=", int64(c.proto))
	return append(b, '\n')
}

func appendKV(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(append(b, key...), v, 10)
}

// clients returns the server's sessions in connection order, but for
// those already ending.
func (s *Server) clients() []*session {
	all := slices.DeleteFunc(s.liveSessions(), func(sess *session) bool { return sess.gone.Load() })
	slices.SortFunc(all, func(a, b *session) int { return cmp.Compare(a.id, b.id) })
	return all
}

// clientLocal answers CLIENT ID, CLIENT INFO and CLIENT LIST for
// respguard's own clients.
func (s *session) clientLocal(args [][]byte) []byte {
	sub := clientSub(args)
	if sub != "list" && len(args) != 2 {
		return wrongArgs("client|" + sub)
	}
	s.publish() // this command shows in its own line
	switch sub {
	case "id":
		return resp.AppendInt(nil, int64(s.id))
	case "info":
		st := s.state(time.Now())
		return s.appendText(nil, appendClientLine(nil, &st))
	}
	match, errText := clientListFilter(args)
	if errText != "" {
		return resp.AppendError(nil, errText)
	}
	var text []byte
	now := time.Now()
	for _, c := range s.srv.clients() {
		if st := c.state(now); match(&st) {
			text = appendClientLine(text, &st)
		}
	}
	return s.appendText(nil, text)
}

// appendText appends text as Redis sends CLIENT LIST: a verbatim string in
// RESP3, a bulk string in RESP2.
func (s *session) appendText(b, text []byte) []byte {
	if s.proto >= 3 {
		return appendVerbatim(b, text)
	}
	return resp.AppendBulk(b, text)
}

// clientListFilter parses CLIENT LIST's [TYPE type] [ID id ...] as Redis
// 7.0 does, returning the filter or Redis's error text.
func clientListFilter(args [][]byte) (func(*clientState) bool, string) {
	switch {
	case len(args) == 2:
		return func(*clientState) bool { return true }, ""
	case len(args) == 4 && equalFold(args[2], "type"):
		match, ok := clientTypeFilter(args[3])
		if !ok {
			return nil, "ERR Unknown client type '" + string(args[3]) + "'"
		}
		return match, ""
	case len(args) > 3 && equalFold(args[2], "id"):
		ids := map[uint64]bool{}
		for _, a := range args[3:] {
			id, ok := resp.ParseInt(a)
			if !ok {
				return nil, "ERR Invalid client ID"
			}
			if id > 0 { // Redis takes any integer; no client has an id below 1
				ids[uint64(id)] = true
			}
		}
		return func(c *clientState) bool { return ids[c.id] }, ""
	}
	return nil, "ERR syntax error"
}

// clientTypeFilter matches the clients of a CLIENT LIST/KILL TYPE. A
// client streaming SYNC/PSYNC is a replica; none is a primary.
func clientTypeFilter(name []byte) (func(*clientState) bool, bool) {
	switch {
	case equalFold(name, "normal"):
		return func(c *clientState) bool { return !c.pubsub() && !c.replica }, true
	case equalFold(name, "pubsub"):
		return (*clientState).pubsub, true
	case equalFold(name, "replica"), equalFold(name, "slave"):
		return func(c *clientState) bool { return c.replica }, true
	case equalFold(name, "master"):
		return func(*clientState) bool { return false }, true
	}
	return nil, false
}

// connFD returns the file descriptor behind conn (through TLS), or -1.
func connFD(conn net.Conn) int {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = nc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}
