package proxy

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// Admin is what the RESPGUARD command reads from outside the proxy: the
// configuration in force and the reload the config watcher runs. The zero
// value is valid: RESPGUARD CONFIG then answers nothing and RELOAD an error.
type Admin struct {
	// Config returns the configuration in force as settings sorted by key,
	// secrets masked. It must be safe to call from any goroutine. Nil: none.
	Config func() []Setting
	// Reload reloads the configuration as the config file watcher does and
	// returns why the new one was refused (nil: applied). It returns early
	// with an error if ctx ends. Nil: RESPGUARD RELOAD is refused.
	Reload func(ctx context.Context) error
	// UpstreamMode names the topology RESPGUARD UPSTREAMS reports
	// (standalone, cluster, sentinel); "" means standalone or cluster, as
	// the server was built.
	UpstreamMode string
}

// Setting is one configuration key (dotted, as in the file) and its value.
type Setting struct{ Key, Value string }

// SetAdmin sets what RESPGUARD CONFIG and RELOAD answer from; safe while
// serving.
func (s *Server) SetAdmin(a Admin) { s.admin.Store(&a) }

func (s *Server) adminHooks() Admin {
	if a := s.admin.Load(); a != nil {
		return *a
	}
	return Admin{}
}

// respguardSub is one RESPGUARD subcommand: its largest argument count
// (the command table holds the smallest), its help, and its answer.
type respguardSub struct {
	maxArgs int
	help    []string
	answer  func(s *session, ctx context.Context, args [][]byte) []byte
}

// respguardSubs are RESPGUARD's subcommands, in HELP's order.
var respguardSubs = []struct {
	name string
	sub  respguardSub
}{
	{"clients", respguardSub{2, []string{"CLIENTS", "    Return respguard's clients (CLIENT LIST's fields, plus pending replies and",
		"    whether the client holds a dedicated upstream connection)."}, (*session).rgClients}},
	{"pools", respguardSub{2, []string{"POOLS", "    Return the upstream connection pools' counters, one entry per pool."}, (*session).rgPools}},
	{"upstreams", respguardSub{2, []string{"UPSTREAMS", "    Return the upstream servers: address, mode, role, version, connections."}, (*session).rgUpstreams}},
	{"config", respguardSub{3, []string{"CONFIG [<pattern>]", "    Return the configuration in force (secrets masked), the keys matching",
		"    <pattern> (a glob, default '*')."}, (*session).rgConfig}},
	{"slowlog", respguardSub{3, []string{"SLOWLOG [<count>]", "    Return the <count> newest entries of respguard's slow log (default 10, -1 all)."}, (*session).rgSlowlog}},
	{"bigkeys", respguardSub{2, []string{"BIGKEYS", "    Return the biggest keys seen, by elements and by reply bytes."}, (*session).rgBigKeys}},
	{"hotkeys", respguardSub{2, []string{"HOTKEYS", "    Return the most requested keys, with their request rates."}, (*session).rgHotKeys}},
	{"reload", respguardSub{2, []string{"RELOAD", "    Reload the configuration file, as a change to it or SIGHUP does."}, (*session).rgReload}},
	{"help", respguardSub{2, []string{"HELP", "    Print this help."}, nil}}, // rgHelp: it reads this table
}

// respguardLookup finds the subcommand args[1] names.
func respguardLookup(args [][]byte) (respguardSub, bool) {
	if len(args) < 2 {
		return respguardSub{}, false
	}
	for _, e := range respguardSubs {
		if equalFold(args[1], e.name) {
			return e.sub, true
		}
	}
	return respguardSub{}, false
}

// respguardArgsError returns Redis's error for a RESPGUARD with no or an
// unknown subcommand or too many arguments, or nil. The command table's
// arities (checked by policy first) cover too few arguments.
func respguardArgsError(args [][]byte) []byte {
	if len(args) < 2 {
		return wrongArgs(policy.RespguardCommand)
	}
	sub, ok := respguardLookup(args)
	switch {
	case !ok:
		return resp.AppendError(nil, policy.RespguardUnknownSubcommandText(args[1]))
	case len(args) > sub.maxArgs:
		return wrongArgs(policy.RespguardCommand + "|" + strings.ToLower(string(args[1])))
	}
	return nil
}

// respguard answers RESPGUARD: maps in RESP3, flat arrays in RESP2.
func (s *session) respguard(ctx context.Context, args [][]byte) []byte {
	if reply := respguardArgsError(args); reply != nil {
		return reply
	}
	sub, _ := respguardLookup(args)
	if sub.answer == nil {
		return rgHelp()
	}
	return sub.answer(s, ctx, args)
}

// rgHelp answers RESPGUARD HELP as Redis answers CLIENT HELP.
func rgHelp() []byte {
	lines := []string{"RESPGUARD <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"}
	for _, e := range respguardSubs {
		lines = append(lines, e.sub.help...)
	}
	b := resp.AppendArray(nil, len(lines))
	for _, l := range lines {
		b = resp.AppendSimple(b, l)
	}
	return b
}

// fields appends one map (RESP3) or flat array (RESP2) of name/value pairs.
type fields struct {
	b     []byte
	proto int
}

func (f *fields) open(n int)            { f.b = resp.AppendMap(f.b, n, f.proto) }
func (f *fields) str(k, v string)       { f.b = resp.AppendBulkString(resp.AppendBulkString(f.b, k), v) }
func (f *fields) num(k string, v int64) { f.b = resp.AppendInt(resp.AppendBulkString(f.b, k), v) }
func (f *fields) time(k string, t time.Time) {
	f.str(k, t.UTC().Format(time.RFC3339Nano))
}

// double appends a double: RESP3's type, a bulk string in RESP2 (as Redis
// sends ZSCORE's).
func (f *fields) double(k string, v float64) {
	f.b = resp.AppendBulkString(f.b, k)
	text := strconv.FormatFloat(v, 'g', 17, 64)
	if f.proto >= 3 {
		f.b = append(append(append(f.b, ','), text...), '\r', '\n')
		return
	}
	f.b = resp.AppendBulkString(f.b, text)
}

func flag01(on bool) int64 {
	if on {
		return 1
	}
	return 0
}

// rgClients answers RESPGUARD CLIENTS: CLIENT LIST's data as maps, plus
// what only respguard knows (pending replies, a dedicated connection held).
func (s *session) rgClients(context.Context, [][]byte) []byte {
	s.publish() // this command shows in its own entry
	all, now := s.srv.clients(), time.Now()
	f := fields{b: resp.AppendArray(nil, len(all)), proto: s.proto}
	for _, c := range all {
		st := c.state(now)
		c.ded.mu.Lock()
		dedicated := c.ded.conn != nil
		c.ded.mu.Unlock()
		f.open(18)
		f.num("id", int64(st.id))
		f.str("addr", st.addr)
		f.str("laddr", st.laddr)
		f.str("name", st.name)
		f.str("user", st.user)
		f.num("age", st.age)
		f.num("idle", st.idle)
		f.str("flags", st.flags)
		f.num("db", int64(st.db))
		f.num("sub", int64(st.sub))
		f.num("psub", int64(st.psub))
		f.num("ssub", int64(st.ssub))
		f.num("multi", int64(st.multi))
		f.num("omem", st.omem)
		f.str("cmd", st.cmd)
		f.num("resp", int64(st.proto))
		f.num("pending", int64(c.out.pending()))
		f.num("dedicated", flag01(dedicated))
	}
	return f.b
}

// upstreamPools returns the upstream pools with their addresses: the one
// upstream, or the cluster's primaries.
func (s *Server) upstreamPools() ([]*pool.Pool, []string) {
	if s.cluster != nil {
		return s.cluster.Primaries()
	}
	addr := s.pool.Config().Address
	if hp := s.upstreamAddr.Load(); hp != nil && hp.host != "" {
		addr = joinHostPort(hp.host, hp.port) // a Sentinel failover moves it
	}
	return []*pool.Pool{s.pool}, []string{addr}
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// rgPools answers RESPGUARD POOLS: the counters the pool metrics and INFO's
// # Respguard section read, per pool.
func (s *session) rgPools(context.Context, [][]byte) []byte {
	pools, addrs := s.srv.upstreamPools()
	f := fields{b: resp.AppendArray(nil, len(pools)), proto: s.proto}
	for i, p := range pools {
		st := p.Stats()
		f.open(15)
		f.str("address", addrs[i])
		f.num("dedicated_max", int64(p.Config().WithDefaults().MaxConns))
		f.num("dedicated_total", int64(st.Total))
		f.num("dedicated_idle", int64(st.Idle))
		f.num("dedicated_acquired", int64(st.Acquired))
		f.num("dedicated_constructing", int64(st.Constructing))
		f.num("shared", int64(st.Shared))
		f.num("acquires", st.AcquireCount)
		f.num("empty_acquires", st.EmptyAcquires)
		f.num("canceled_acquires", st.CanceledAcquires)
		f.num("acquire_wait_us", st.AcquireWait.Microseconds())
		f.num("dials", st.Dials)
		f.num("dial_errors", st.DialErrors)
		f.num("reconnects", st.Reconnects)
		f.num("breaker_open", int64(st.BreakersOpen))
	}
	return f.b
}

// rgUpstreams answers RESPGUARD UPSTREAMS: the servers respguard forwards
// to, as it last probed them.
func (s *session) rgUpstreams(context.Context, [][]byte) []byte {
	pools, addrs := s.srv.upstreamPools()
	info, mode := s.srv.upstreamInfo(), s.srv.adminHooks().UpstreamMode
	role := info.Role
	if mode == "" {
		mode = "standalone"
	}
	if s.srv.cluster != nil {
		mode, role = "cluster", "master" // Primaries: the nodes respguard writes to
	}
	f := fields{b: resp.AppendArray(nil, len(pools)), proto: s.proto}
	for i, p := range pools {
		st := p.Stats()
		f.open(8)
		f.str("address", addrs[i])
		f.str("mode", mode)
		f.str("role", role)
		f.str("version", info.Version)
		f.num("databases", int64(s.srv.databases()))
		f.num("connections", int64(st.Shared+st.Total))
		f.num("breaker_open", int64(st.BreakersOpen))
		f.num("dial_errors", st.DialErrors)
	}
	return f.b
}

// rgConfig answers RESPGUARD CONFIG [pattern]: the settings in force.
func (s *session) rgConfig(_ context.Context, args [][]byte) []byte {
	var all []Setting
	if get := s.srv.adminHooks().Config; get != nil {
		all = get()
	}
	pattern := "*"
	if len(args) == 3 {
		pattern = string(args[2])
	}
	var shown []Setting
	for _, st := range all {
		if policy.Match(pattern, st.Key) {
			shown = append(shown, st)
		}
	}
	f := fields{proto: s.proto}
	f.open(len(shown))
	for _, st := range shown {
		f.str(st.Key, st.Value)
	}
	return f.b
}

// rgSlowlog answers RESPGUARD SLOWLOG [count]: /debug/slowlog's entries,
// newest first.
func (s *session) rgSlowlog(_ context.Context, args [][]byte) []byte {
	count := 10
	if len(args) == 3 {
		n, ok := resp.ParseInt(args[2])
		if !ok || n < -1 {
			return resp.AppendError(nil, "ERR count should be greater than or equal to -1")
		}
		count = int(n)
	}
	if s.srv.tel == nil {
		return resp.AppendArray(nil, 0)
	}
	entries := s.srv.tel.Slowlog()
	if count >= 0 && len(entries) > count {
		entries = entries[:count]
	}
	f := fields{b: resp.AppendArray(nil, len(entries)), proto: s.proto}
	for _, e := range entries {
		f.open(11)
		f.num("id", int64(e.ID))
		f.time("time", e.Time)
		f.num("duration_ns", int64(e.Duration))
		f.num("upstream_ns", int64(e.Upstream))
		f.str("command", e.Command)
		f.str("statement", e.Statement)
		f.str("user", e.User)
		f.str("client_addr", e.ClientAddr)
		f.num("db", int64(e.DB))
		f.str("decision", e.Decision)
		f.str("error", e.Error)
	}
	return f.b
}

// rgBigKeys answers RESPGUARD BIGKEYS: /debug/bigkeys's two tables.
func (s *session) rgBigKeys(context.Context, [][]byte) []byte {
	var byElements, byBytes []guard.KeyStat
	if g := s.srv.Guard(); g != nil {
		byElements, byBytes = g.BigKeys(), g.BigKeysByBytes()
	}
	f := fields{proto: s.proto}
	f.open(2)
	for _, table := range []struct {
		name  string
		stats []guard.KeyStat
	}{{"by_elements", byElements}, {"by_bytes", byBytes}} {
		f.b = resp.AppendArray(resp.AppendBulkString(f.b, table.name), len(table.stats))
		for _, k := range table.stats {
			f.open(4)
			f.str("key", k.Key)
			f.num("elements", k.Elements)
			f.num("bytes", k.Bytes)
			f.time("seen", k.Seen)
		}
	}
	return f.b
}

// rgHotKeys answers RESPGUARD HOTKEYS: /debug/hotkeys's table.
func (s *session) rgHotKeys(context.Context, [][]byte) []byte {
	var hot []guard.KeyStat
	if g := s.srv.Guard(); g != nil {
		hot = g.HotKeys()
	}
	f := fields{b: resp.AppendArray(nil, len(hot)), proto: s.proto}
	for _, k := range hot {
		f.open(4)
		f.str("key", k.Key)
		f.double("rate", k.Rate)
		f.double("rate_error", k.RateError)
		f.time("seen", k.Seen)
	}
	return f.b
}

// rgReload answers RESPGUARD RELOAD: +OK once the configuration is reloaded,
// or why it was refused (the running one then stays in force).
func (s *session) rgReload(ctx context.Context, _ [][]byte) []byte {
	reload := s.srv.adminHooks().Reload
	if reload == nil {
		return resp.AppendError(nil, "ERR respguard: no configuration to reload")
	}
	if err := reload(ctx); err != nil {
		return resp.AppendError(nil, "ERR respguard: config reload failed; the running configuration stays in force: "+err.Error())
	}
	return resp.AppendSimple(nil, "OK")
}
