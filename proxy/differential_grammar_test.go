package proxy

import (
	"strconv"
	"strings"
)

// The grammar of the differential test. A client's sequence is a list of
// steps; a step is one or more commands written in one go (a pipeline). Every
// choice is read from a byte string (byteChoices), so the deterministic test
// (bytes from a seeded generator) and the fuzz target (bytes from the fuzzer)
// share one grammar, and any failing sequence replays from its bytes.
//
// Every key, value, channel, client name and script carries the client's
// token, so clients never touch each other's data and any token seen by
// another client is a leaked reply. Commands that act on the whole server
// (FLUSHALL, KEYS, CONFIG, DEBUG, SWAPDB, SCRIPT FLUSH...) are only generated
// where every user is denied them (the production preset).

// byteChoices hands out choices read from b. Once b is used up every choice
// is 0 and exhausted reports true.
//
// With record set, it makes the bytes up instead (from record, except that
// every family choice is forceFamily) and appends them to b: that is how the
// seed corpus is written (TestWriteDifferentialSeeds).
type byteChoices struct {
	b           []byte
	pos         int
	record      func() byte
	forceFamily int
}

// intn returns a choice in [0, n).
func (c *byteChoices) intn(n int) int {
	if c.record != nil {
		c.b = append(c.b, c.record())
	}
	if n <= 1 {
		return 0
	}
	if c.pos >= len(c.b) {
		c.pos++
		return 0
	}
	v := int(c.b[c.pos])
	c.pos++
	return v % n
}

// family returns the index of the next step's family in diffFamilies.
func (c *byteChoices) family() int {
	if c.record != nil {
		c.b = append(c.b, byte(c.forceFamily))
		c.pos++
		return c.forceFamily
	}
	return c.intn(len(diffFamilies))
}

func (c *byteChoices) exhausted() bool { return c.record == nil && c.pos >= len(c.b) }

// diffCmd is one command of a step. direct, when set, is what the direct run
// sends instead (see guardRefusalPlaceholder).
type diffCmd struct {
	args   []string
	direct []string
}

// diffStep is a step of a client's sequence.
type diffStep struct {
	family string
	cmds   []diffCmd
	// raw, when set, is written instead of the encoded commands and the step
	// ends with the connection closed (a protocol error).
	raw string
}

// diffFamily is a family of steps: a name (the unit pendingFamilies gates)
// and its generator.
type diffFamily struct {
	name string
	gen  func(g *diffGen) diffStep
}

// diffFamilies covers every kind of command that changes, or may desync, what
// a connection owes its client.
var diffFamilies = []diffFamily{
	{"plain", (*diffGen).plainStep},
	{"pipeline", (*diffGen).pipelineStep},
	{"multi", (*diffGen).multiStep},
	{"multi-state", (*diffGen).multiStateStep},
	{"multi-local", (*diffGen).multiLocalStep},
	{"exec-denied", (*diffGen).execDeniedStep},
	{"watch", (*diffGen).watchStep},
	{"pubsub", (*diffGen).pubsubStep},
	{"pubsub-pattern", (*diffGen).pubsubPatternStep},
	{"pubsub-denied", (*diffGen).pubsubDeniedStep},
	{"pubsub-context", (*diffGen).pubsubContextStep},
	{"pubsub-local", (*diffGen).pubsubLocalStep},
	{"unsubscribe", (*diffGen).unsubscribeStep},
	{"unsubscribe-all", (*diffGen).unsubscribeAllStep},
	{"hello", (*diffGen).helloStep},
	{"select", (*diffGen).selectStep},
	{"client-reply", (*diffGen).clientReplyStep},
	{"client-reply-local", (*diffGen).clientReplyLocalStep},
	{"reset", (*diffGen).resetStep},
	{"replconf", (*diffGen).replconfStep},
	{"blocking", (*diffGen).blockingStep},
	{"script", (*diffGen).scriptStep},
	{"unknown", (*diffGen).unknownStep},
	{"denied", (*diffGen).deniedStep},
	{"guard", (*diffGen).guardStep},
	{"guard-del", (*diffGen).guardDelStep},
	{"guard-multi", (*diffGen).guardMultiStep},
	{"crlf", (*diffGen).crlfStep},
	{"oversize", (*diffGen).oversizeStep},
	{"auth", (*diffGen).authStep},
}

// diffUser is a policy user, mirrored on the direct server with ACL SETUSER.
type diffUser struct{ name, password, rules string }

// diffUsers are the users the clients authenticate as. Every user (default
// included) also gets the production preset.
var diffUsers = []diffUser{
	{"full", "full-pw", "~* &* +@all"},
	{"app", "app-pw", "~app:* &app:* +@all -@admin -@dangerous"},
	{"reader", "reader-pw", "~* &* +@read +@connection"},
}

// noExecUser may do anything but EXEC; only execDeniedStep logs in as it.
var noExecUser = diffUser{"noexec", "noexec-pw", "~* &* +@all -exec"}

const (
	// guardTTLPattern is the guard.require_ttl pattern of the proxy.
	guardTTLPattern = "app:ttl:*"
	// guardMaxElements is the proxy's guard.max_elements.
	guardMaxElements = 16
	// guardRefusalPlaceholder is sent to the direct server in place of a
	// command the proxy's guard refuses: Redis refuses an unknown command
	// before queueing it, with no effect, so the direct run sees what a
	// guard refusal must be (one error, the transaction aborted).
	guardRefusalPlaceholder = "RESPGUARD-GUARD-REFUSAL"
	// multiRefusalPlaceholder is sent to the direct server in place of a
	// command respguard refuses inside MULTI, as guardRefusalPlaceholder.
	multiRefusalPlaceholder = "RESPGUARD-REFUSED-IN-MULTI"
	// bulkLimit is proto-max-bulk-len of both servers (Redis's minimum).
	bulkLimit = 1 << 20
)

// diffGen generates one client's steps.
type diffGen struct {
	ch      *byteChoices
	tok     string          // the client's token
	enabled map[string]bool // the families that run; nil: all
	n       int             // counter for unique values
}

// next returns the next step of an enabled family, or false once the
// choices are used up. A step of another family is drawn and dropped, so
// the same bytes mean the same steps whichever families are enabled.
func (g *diffGen) next() (diffStep, bool) {
	for !g.ch.exhausted() {
		f := diffFamilies[g.ch.family()]
		st := f.gen(g)
		st.family = f.name
		if g.enabled == nil || g.enabled[f.name] {
			return st, true
		}
	}
	return diffStep{}, false
}

// connect is the first step of every connection: authenticate as one of the
// users (or stay default) and pick the protocol.
func (g *diffGen) connect() diffStep {
	proto := strconv.Itoa(2 + g.ch.intn(2))
	u := g.ch.intn(len(diffUsers) + 1)
	if u == len(diffUsers) {
		return diffStep{family: "connect", cmds: []diffCmd{cmd("HELLO", proto)}}
	}
	du := diffUsers[u]
	if g.ch.intn(2) == 0 {
		return diffStep{family: "connect", cmds: []diffCmd{cmd("HELLO", proto, "AUTH", du.name, du.password)}}
	}
	return diffStep{family: "connect", cmds: []diffCmd{cmd("AUTH", du.name, du.password), cmd("HELLO", proto)}}
}

func cmd(args ...string) diffCmd { return diffCmd{args: args} }

func (g *diffGen) pick(options ...string) string { return options[g.ch.intn(len(options))] }

// key is one of the client's keys; the app: prefix is what the app user may touch.
func (g *diffGen) key() string { return "app:" + g.tok + ":" + strconv.Itoa(g.ch.intn(5)) }

// otherKey is a key of the client outside the app user's pattern.
func (g *diffGen) otherKey() string { return "other:" + g.tok + ":" + strconv.Itoa(g.ch.intn(2)) }

func (g *diffGen) channel() string { return "app:" + g.tok + ":c" + strconv.Itoa(g.ch.intn(3)) }

// value is a value carrying the client's token, most unique to the call,
// some holding CR/LF.
func (g *diffGen) value() string {
	g.n++
	v := "v:" + g.tok + ":" + strconv.Itoa(g.n)
	switch g.ch.intn(6) {
	case 0:
		return v + "\r\n" + v // CR/LF inside a value
	case 1:
		return g.tok
	}
	return v
}

func step(cmds ...diffCmd) diffStep { return diffStep{cmds: cmds} }

// plainCmd is an ordinary read or write of one of the client's keys.
func (g *diffGen) plainCmd() diffCmd {
	k := g.key()
	switch g.ch.intn(22) {
	case 0:
		return cmd("SET", k, g.value())
	case 1:
		return cmd("SET", k, g.value(), "EX", "1000")
	case 2:
		return cmd("GET", k)
	case 3:
		return cmd("INCR", k)
	case 4:
		return cmd("APPEND", k, g.value())
	case 5:
		return cmd("UNLINK", k, g.key()) // DEL, which the guard rewrites, is guardDelStep's
	case 6:
		return cmd("EXISTS", k, g.key())
	case 7:
		return cmd("RPUSH", k, g.value(), g.value())
	case 8:
		return cmd("LPOP", k)
	case 9:
		return cmd("LRANGE", k, "0", "5")
	case 10:
		return cmd("HSET", k, "f"+strconv.Itoa(g.ch.intn(3)), g.value())
	case 11:
		return cmd("HGETALL", k)
	case 12:
		return cmd("SADD", k, g.value())
	case 13:
		return cmd("SCARD", k)
	case 14:
		return cmd("ZADD", k, strconv.Itoa(g.ch.intn(9)), g.value())
	case 15:
		return cmd("ZRANGE", k, "0", "-1", "WITHSCORES")
	case 16:
		return cmd("MGET", k, g.key())
	case 17:
		return cmd("TYPE", k)
	case 18:
		return cmd("EXPIRE", k, "1000")
	case 19:
		return cmd("XADD", k, strconv.Itoa(1+g.ch.intn(3))+"-1", "f", g.value())
	case 20:
		return cmd("PING")
	default:
		return cmd("PING", g.value())
	}
}

func (g *diffGen) plainStep() diffStep { return step(g.plainCmd()) }

// mixedCmd is any command that keeps the connection's state as it is.
// Outside MULTI it may be the renamed-away command (answered by respguard,
// which inside MULTI is multiLocalStep's) or a script (which respguard
// refuses inside MULTI: multiStateStep's).
func (g *diffGen) mixedCmd(inMulti bool) diffCmd {
	switch g.ch.intn(9) {
	case 0:
		return g.unknownCmd()
	case 1:
		return g.deniedCmd()
	case 2:
		if c := g.scriptCmd(); !inMulti || !runsScript(c.args[0]) {
			return c
		}
	case 3:
		if !inMulti {
			return g.renamedCmd()
		}
	}
	return g.plainCmd()
}

// runsScript reports whether name runs a script (EVAL, EVALSHA, FCALL).
func runsScript(name string) bool {
	return name == "EVAL" || name == "EVALSHA" || name == "FCALL"
}

func (g *diffGen) pipelineStep() diffStep {
	n := 2 + g.ch.intn(6)
	var st diffStep
	for range n {
		st.cmds = append(st.cmds, g.mixedCmd(false))
	}
	return st
}

// queuedCmd is a command sent inside MULTI: ordinary ones, and ones Redis
// refuses before queueing (unknown, wrong arity, denied).
func (g *diffGen) queuedCmd() diffCmd {
	switch g.ch.intn(6) {
	case 0:
		return cmd("GET") // wrong arity
	case 1:
		return cmd("BLPOP", g.key(), "0.01") // never blocks inside MULTI
	}
	return g.mixedCmd(true)
}

// localCmd is a command respguard answers itself (outside a transaction).
func (g *diffGen) localCmd() diffCmd {
	switch g.ch.intn(4) {
	case 0:
		u := diffUsers[g.ch.intn(len(diffUsers))]
		return cmd("AUTH", u.name, g.pick(u.password, "wrong"))
	case 1:
		return cmd("CLIENT", "SETNAME", g.pick("n-"+g.tok, "", "bad name"))
	case 2:
		return cmd("CLIENT", "GETNAME")
	default:
		return cmd("SELECT", g.pick("1", "99", "x"))
	}
}

// execEnd closes a transaction in one of the ways a client may.
func (g *diffGen) execEnd() []diffCmd {
	switch g.ch.intn(6) {
	case 0:
		return []diffCmd{cmd("DISCARD")}
	case 1:
		return nil // left open: the step's trailer discards it
	case 2:
		return []diffCmd{cmd("EXEC"), cmd("EXEC")} // the second has no MULTI
	default:
		return []diffCmd{cmd("EXEC")}
	}
}

func (g *diffGen) multiStep() diffStep {
	st := step(cmd("MULTI"))
	for range g.ch.intn(5) {
		st.cmds = append(st.cmds, g.queuedCmd())
	}
	if g.ch.intn(6) == 0 {
		st.cmds = append(st.cmds, cmd("MULTI")) // nested: an error, not queued
	}
	st.cmds = append(st.cmds, g.execEnd()...)
	return st
}

// multiStateStep puts commands that change the connection's state inside
// MULTI. respguard refuses HELLO, CLIENT REPLY, SUBSCRIBE and scripts there
// (README, Differences), so the direct run gets refusedInMulti's placeholder; SELECT
// takes effect at EXEC, RESET at once (ending the transaction), AUTH at EXEC
// (last: respguard checks the commands queued after it as the old user,
// Redis as the new one). What follows EXEC shows the state it left.
func (g *diffGen) multiStateStep() diffStep {
	// From a known state (RESET: the default user, who may run MULTI), in
	// either protocol, so the placeholders certainly stand inside MULTI.
	st := step(cmd("RESET"))
	if g.ch.intn(2) == 0 {
		st.cmds = append(st.cmds, cmd("HELLO", "3"))
	}
	st.cmds = append(st.cmds, cmd("MULTI"))
	inMulti := true
	for i, n := 0, 1+g.ch.intn(3); i < n; i++ {
		switch g.ch.intn(8) {
		case 0:
			if inMulti {
				st.cmds = append(st.cmds, refusedInMulti("SUBSCRIBE", g.channel()))
			}
		case 1:
			if inMulti {
				st.cmds = append(st.cmds, refusedInMulti("HELLO", g.pick("2", "3")))
			}
		case 2:
			st.cmds = append(st.cmds, cmd("SELECT", g.pick("0", "2", "99")))
		case 3:
			if inMulti {
				st.cmds = append(st.cmds, refusedInMulti("CLIENT", "REPLY", g.pick("OFF", "SKIP", "ON")))
			}
		case 4:
			st.cmds = append(st.cmds, cmd("RESET"))
			inMulti = false
		case 5:
			u := diffUsers[g.ch.intn(len(diffUsers))]
			st.cmds = append(st.cmds, cmd("AUTH", u.name, u.password))
			i = n
		case 6:
			c := g.scriptCmd()
			if inMulti && runsScript(c.args[0]) {
				c = refusedInMulti(c.args...) // scripts run on a connection of their own
			}
			st.cmds = append(st.cmds, c)
		default:
			st.cmds = append(st.cmds, g.queuedCmd())
		}
	}
	st.cmds = append(st.cmds, g.execEnd()...)
	for range g.ch.intn(3) {
		st.cmds = append(st.cmds, g.plainCmd())
	}
	return st
}

// refusedInMulti is a command respguard refuses inside MULTI; the direct
// run gets the placeholder instead, which Redis too refuses before queueing
// (the transaction then aborts at EXEC either way).
func refusedInMulti(args ...string) diffCmd {
	return diffCmd{args: args, direct: []string{multiRefusalPlaceholder}}
}

// execDeniedStep: an EXEC that is refused (wrong arity; a user without EXEC)
// and what the commands after it get.
func (g *diffGen) execDeniedStep() diffStep {
	st := step(cmd("MULTI"), g.plainCmd())
	noExec := g.ch.intn(2) == 0
	if noExec {
		st.cmds = append([]diffCmd{cmd("AUTH", noExecUser.name, noExecUser.password)}, st.cmds...)
	}
	if g.ch.intn(2) == 0 {
		st.cmds = append(st.cmds, cmd("EXEC", "extra"))
	} else {
		st.cmds = append(st.cmds, cmd("EXEC"))
	}
	st.cmds = append(st.cmds, g.plainCmd(), cmd("EXEC"))
	if noExec {
		st.cmds = append(st.cmds, cmd("DISCARD"), cmd("AUTH", "full", "full-pw"))
	}
	return st
}

func (g *diffGen) watchStep() diffStep {
	k := g.key()
	st := step(cmd("WATCH", k, g.key()))
	switch g.ch.intn(4) {
	case 0:
		st.cmds = append(st.cmds, cmd("SET", k, g.value())) // the watch fires: EXEC answers null
	case 1:
		st.cmds = append(st.cmds, cmd("UNWATCH"))
	}
	st.cmds = append(st.cmds, cmd("MULTI"), g.plainCmd(), cmd("WATCH", k)) // WATCH inside MULTI is an error
	st.cmds = append(st.cmds, g.execEnd()...)
	return st
}

// pubsubStep subscribes, publishes to its own channels and unsubscribes, in
// whatever protocol the client speaks. It subscribes first, so unsubscribing
// from nothing is left to unsubscribeStep.
func (g *diffGen) pubsubStep() diffStep {
	st := step(cmd("SUBSCRIBE", g.channel()))
	for range g.ch.intn(4) {
		c := g.channel()
		switch g.ch.intn(7) {
		case 0, 1:
			st.cmds = append(st.cmds, cmd("SUBSCRIBE", c, g.channel()))
		case 2:
			st.cmds = append(st.cmds, cmd("SSUBSCRIBE", c))
		case 3:
			st.cmds = append(st.cmds, cmd("PUBLISH", c, g.value()))
		case 4:
			st.cmds = append(st.cmds, cmd("UNSUBSCRIBE", c))
		case 5:
			st.cmds = append(st.cmds, cmd("PING", g.pick("", "x")))
		default:
			st.cmds = append(st.cmds, cmd("GET", c)) // refused while subscribed over RESP2
		}
	}
	// Leave Pub/Sub with RESET: unsubscribing is unsubscribeStep's, and what
	// respguard answers itself while subscribed is pubsubLocalStep's.
	return step(append(st.cmds, cmd("RESET"))...)
}

// pubsubLocalStep sends commands respguard answers itself while subscribed:
// over RESP2 Redis refuses them in that context, over RESP3 it runs them.
func (g *diffGen) pubsubLocalStep() diffStep {
	st := step(cmd("SUBSCRIBE", g.channel()))
	for range 1 + g.ch.intn(2) {
		st.cmds = append(st.cmds, g.localCmd())
	}
	return step(append(st.cmds, cmd("RESET"))...)
}

// pubsubPatternStep subscribes to the one pattern of the client's channels
// (one only: Redis delivers a message matching several patterns in the order
// of its pattern table, which other clients' patterns reshape). The app user
// may not: Redis only grants a pattern its ACL names literally.
func (g *diffGen) pubsubPatternStep() diffStep {
	st := step(cmd("PSUBSCRIBE", "app:"+g.tok+":*"))
	if g.ch.intn(2) == 0 {
		st.cmds = append(st.cmds, cmd("SUBSCRIBE", g.channel()))
	}
	st.cmds = append(st.cmds, cmd("PUBLISH", g.channel(), g.value()), cmd("PUNSUBSCRIBE", "app:"+g.tok+":*"))
	return step(append(st.cmds, cmd("RESET"))...)
}

// pubsubDeniedStep is denied a channel (the app user) while replies to its
// earlier commands in Pub/Sub mode are still in flight.
func (g *diffGen) pubsubDeniedStep() diffStep {
	c := g.channel()
	return step(cmd("SUBSCRIBE", c), cmd("PUBLISH", c, g.value()), cmd("SUBSCRIBE", "other:"+g.tok), cmd("RESET"))
}

// pubsubContextStep runs, while subscribed, one command Redis refuses by
// name over RESP2: DEL (which the guard sends as a script) or one respguard
// answers itself. One only: over RESP3 a reply respguard makes itself may
// overtake replies still in flight (pubsubLocalStep's divergence).
func (g *diffGen) pubsubContextStep() diffStep {
	c := cmd("DEL", g.key())
	if g.ch.intn(2) == 0 {
		c = g.localCmd()
	}
	return step(cmd("SUBSCRIBE", g.channel()), c, cmd("RESET"))
}

// unsubscribeStep unsubscribes from channels the client is not subscribed
// to: Redis answers once per channel (RESP2) or with pushes.
func (g *diffGen) unsubscribeStep() diffStep {
	args := []string{g.pick("UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE")}
	for range g.ch.intn(4) {
		args = append(args, g.channel())
	}
	return step(cmd(args...), g.plainCmd(), g.deniedCmd())
}

// unsubscribeAllStep subscribes to one channel (one: unsubscribing from all
// answers in the order of a hash table each server seeds at random), then
// unsubscribes from everything and runs commands, some answered by
// respguard itself, outside Pub/Sub again.
func (g *diffGen) unsubscribeAllStep() diffStep {
	return step(cmd("SUBSCRIBE", g.channel()), cmd("UNSUBSCRIBE"), g.plainCmd(), g.deniedCmd(), g.unknownCmd())
}

func (g *diffGen) helloStep() diffStep {
	switch g.ch.intn(6) {
	case 0:
		return step(cmd("HELLO"))
	case 1:
		return step(cmd("HELLO", "4"))
	case 2:
		return step(cmd("HELLO", g.pick("2", "3"), "SETNAME", "n-"+g.tok), cmd("CLIENT", "GETNAME"))
	case 3:
		u := diffUsers[g.ch.intn(len(diffUsers))]
		return step(cmd("HELLO", g.pick("2", "3"), "AUTH", u.name, g.pick(u.password, "wrong")))
	default:
		return step(cmd("HELLO", g.pick("2", "3")), g.plainCmd())
	}
}

func (g *diffGen) selectStep() diffStep {
	return step(cmd("SELECT", g.pick("0", "1", "3", "99", "-1", "x")), g.plainCmd())
}

// clientReplyStep turns replies off or skips one, runs commands Redis
// answers, and maybe turns replies back on.
func (g *diffGen) clientReplyStep() diffStep {
	st := step(cmd("CLIENT", "REPLY", g.pick("OFF", "SKIP", "SKIP", "ON")))
	for range 1 + g.ch.intn(3) {
		if g.ch.intn(4) == 0 {
			st.cmds = append(st.cmds, cmd("CLIENT", "REPLY", g.pick("SKIP", "ON")))
		} else {
			st.cmds = append(st.cmds, g.plainCmd())
		}
	}
	return st
}

// clientReplyLocalStep is clientReplyStep with commands respguard answers
// itself (denials, unknown commands, AUTH, SELECT...), whose replies must be
// switched off or skipped just the same.
func (g *diffGen) clientReplyLocalStep() diffStep {
	st := step(cmd("CLIENT", "REPLY", g.pick("OFF", "SKIP")))
	for range 1 + g.ch.intn(3) {
		switch g.ch.intn(4) {
		case 0:
			st.cmds = append(st.cmds, g.localCmd())
		case 1:
			st.cmds = append(st.cmds, g.unknownCmd())
		case 2:
			st.cmds = append(st.cmds, g.deniedCmd())
		default:
			st.cmds = append(st.cmds, g.plainCmd())
		}
	}
	return st
}

// multiLocalStep queues commands respguard answers itself outside a
// transaction; Redis queues them and answers in EXEC's array. An AUTH comes
// last: respguard checks the commands queued after it as the old user, Redis
// as the new one (README, Differences).
func (g *diffGen) multiLocalStep() diffStep {
	st := step(cmd("MULTI"))
	for i, n := 0, 1+g.ch.intn(3); i < n; i++ {
		switch g.ch.intn(4) {
		case 0:
			st.cmds = append(st.cmds, g.plainCmd())
		case 1:
			st.cmds = append(st.cmds, g.renamedCmd()) // answered by respguard too
		default:
			c := g.localCmd()
			st.cmds = append(st.cmds, c)
			if c.args[0] == "AUTH" {
				i = n
			}
		}
	}
	st.cmds = append(st.cmds, g.execEnd()...)
	return st
}

func (g *diffGen) resetStep() diffStep {
	if g.ch.intn(6) == 0 {
		return diffStep{cmds: []diffCmd{cmd("QUIT")}} // closes; the runner reconnects
	}
	return step(cmd("RESET"), g.plainCmd())
}

// replconfStep sends the REPLCONF subcommands Redis does not answer
// (respguard refuses the others: README, Differences).
func (g *diffGen) replconfStep() diffStep {
	return step(cmd("REPLCONF", g.pick("ACK", "GETACK"), g.pick("0", "*")), g.plainCmd())
}

// blockingStep pops with a timeout short enough to expire, or from a list
// just filled.
func (g *diffGen) blockingStep() diffStep {
	k := g.key()
	var st diffStep
	if g.ch.intn(2) == 0 {
		st.cmds = append(st.cmds, cmd("RPUSH", k, g.value()))
	}
	timeout := g.pick("0.01", "0.02", "0.05")
	switch g.ch.intn(5) {
	case 0:
		st.cmds = append(st.cmds, cmd("BLPOP", k, g.key(), timeout))
	case 1:
		st.cmds = append(st.cmds, cmd("BRPOP", k, timeout))
	case 2:
		st.cmds = append(st.cmds, cmd("BLMOVE", k, g.key(), "LEFT", "RIGHT", timeout))
	case 3:
		st.cmds = append(st.cmds, cmd("BZPOPMIN", k, timeout))
	default:
		st.cmds = append(st.cmds, cmd("XREAD", "BLOCK", "20", "STREAMS", k, "0-0"))
	}
	st.cmds = append(st.cmds, g.plainCmd())
	return st
}

// scriptCmd runs scripts whose bodies carry the token, so the servers'
// script caches are never shared between clients.
func (g *diffGen) scriptCmd() diffCmd {
	body := "return redis.call('GET', KEYS[1]) -- " + g.tok
	switch g.ch.intn(8) {
	case 0:
		return cmd("EVAL", body, "1", g.key())
	case 1:
		return cmd("EVAL", "return redis.call('SET', KEYS[1], ARGV[1]) -- "+g.tok, "1", g.key(), g.value())
	case 2:
		return cmd("EVAL", "return {1, 'x', {2, ARGV[1]}} -- "+g.tok, "0", g.value())
	case 3:
		return cmd("EVAL", "return redis.error_reply('MY "+g.tok+"')", "0")
	case 4:
		return cmd("SCRIPT", "LOAD", body)
	case 5:
		return cmd("EVALSHA", sha1Hex(body), "1", g.key())
	case 6:
		if g.ch.intn(2) == 0 {
			return cmd("SCRIPT", "KILL") // nothing is running: NOTBUSY
		}
		return cmd("SCRIPT", "EXISTS", sha1Hex(body))
	default:
		return cmd(g.pick("FCALL", "FUNCTION"), g.pick("KILL", "nosuch"), "0")
	}
}

func (g *diffGen) scriptStep() diffStep { return step(g.scriptCmd(), g.scriptCmd()) }

// unknownCmd is a command or subcommand Redis does not know, or a command
// with the wrong number of arguments.
func (g *diffGen) unknownCmd() diffCmd {
	switch g.ch.intn(4) {
	case 0:
		return cmd("NOSUCH", g.key())
	case 1:
		return cmd("CLIENT", "NOSUCH")
	case 2:
		return cmd("OBJECT", "NOSUCH", g.key())
	default:
		return cmd("SET", g.key()) // wrong arity
	}
}

// renamedCmd is a command renamed away (to ""): unknown to the clients.
func (g *diffGen) renamedCmd() diffCmd { return cmd("ECHO", "v:"+g.tok) }

func (g *diffGen) unknownStep() diffStep {
	if g.ch.intn(4) == 0 {
		return step(g.renamedCmd(), g.plainCmd())
	}
	return step(g.unknownCmd(), g.plainCmd())
}

// deniedCmd is refused to some or all users: the production preset, keys
// and channels outside the app user's patterns, writes for the reader.
func (g *diffGen) deniedCmd() diffCmd {
	switch g.ch.intn(7) {
	case 0:
		return cmd("FLUSHALL")
	case 1:
		return cmd("KEYS", "*")
	case 2:
		return cmd("CONFIG", "GET", "maxmemory")
	case 3:
		return cmd("GET", g.otherKey())
	case 4:
		return cmd("SET", g.otherKey(), g.value())
	case 5:
		return cmd("PUBLISH", "other:"+g.tok, g.value())
	default:
		return cmd("SCRIPT", "FLUSH")
	}
}

func (g *diffGen) deniedStep() diffStep { return step(g.deniedCmd(), g.plainCmd()) }

// guardCmd is refused by the proxy's guard.require_ttl. The direct run gets
// the placeholder instead; the comparison maps one to the other.
func (g *diffGen) guardCmd() diffCmd {
	k := "app:ttl:" + g.tok
	args := []string{"SET", k, g.value()}
	if g.ch.intn(2) == 0 {
		args = []string{"PERSIST", k}
	}
	return diffCmd{args: args, direct: []string{guardRefusalPlaceholder}}
}

// guardStep starts from a known state (RESET: the default user, who may
// write every key) so the guard certainly judges the command, then runs
// guarded commands: TTL refusals, allowed writes, and reads the guard sizes.
func (g *diffGen) guardStep() diffStep {
	st := step(cmd("RESET"))
	for range 1 + g.ch.intn(3) {
		st.cmds = append(st.cmds, g.guardedCmd(true))
	}
	return st
}

// guardDelStep deletes keys small and big (the guard sends DEL as a script
// that unlinks big values) from a known state.
func (g *diffGen) guardDelStep() diffStep {
	list := "app:" + g.tok + ":list"
	st := step(cmd("RESET"), cmd("RPUSH", list, g.value()))
	if g.ch.intn(2) == 0 {
		big := []string{"RPUSH", list}
		for range 130 { // over the guard's unlink threshold
			big = append(big, g.value())
		}
		st.cmds = append(st.cmds, cmd(big...))
	}
	return step(append(st.cmds, cmd("DEL", g.key(), list, g.key()))...)
}

// guardMultiStep is guardStep inside MULTI or under CLIENT REPLY OFF|SKIP:
// a refusal aborts the transaction, as a denial does, and is silenced as any
// reply is.
func (g *diffGen) guardMultiStep() diffStep {
	st := step(cmd("RESET"))
	multi := g.ch.intn(2) == 0
	if multi {
		st.cmds = append(st.cmds, cmd("MULTI"))
	} else {
		st.cmds = append(st.cmds, cmd("CLIENT", "REPLY", g.pick("OFF", "SKIP")))
	}
	for range 1 + g.ch.intn(3) {
		st.cmds = append(st.cmds, g.guardedCmd(!multi)) // inside MULTI the guard cannot probe sizes
	}
	if multi {
		st.cmds = append(st.cmds, g.execEnd()...)
	}
	return st
}

// guardedCmd is a command the guard judges: TTL refusals, allowed writes, and
// (with reads) a list read whose size the guard must learn.
func (g *diffGen) guardedCmd(reads bool) diffCmd {
	list := "app:" + g.tok + ":list"
	switch g.ch.intn(4) {
	case 0:
		return g.guardCmd()
	case 1:
		return cmd("SET", "app:ttl:"+g.tok, g.value(), "EX", "1000")
	case 2:
		push := []string{"RPUSH", list}
		for range 1 + g.ch.intn(guardMaxElements) {
			push = append(push, g.value())
		}
		return cmd(push...)
	default:
		if !reads {
			return cmd("LLEN", list)
		}
		return cmd("LRANGE", list, "0", "-1")
	}
}

// crlfStep puts CR/LF inside arguments that end up in error messages.
func (g *diffGen) crlfStep() diffStep {
	switch g.ch.intn(6) {
	case 0:
		return step(cmd("NO\r\nSUCH", "a\r\nb"))
	case 1:
		return step(cmd("CLIENT", "NO\r\nSUCH"))
	case 2:
		return step(cmd("HELLO", "3", "SET\r\nNAME", "x"))
	case 3:
		return step(cmd("ECHO\r\n", "a\r\nb"))
	case 4:
		return step(cmd("CLIENT", "SETNAME", "a\r\nb"))
	default:
		return step(cmd("OBJECT", "ENC\r\nODING", g.key()))
	}
}

// oversizeStep sends an argument over proto-max-bulk-len. Redis refuses it
// from the bulk header alone and closes the connection, so only the header
// is sent (sending the megabyte too would race that close: unread data
// turns the server's FIN into a reset, which can discard its reply).
// Arguments at the limit pass.
func (g *diffGen) oversizeStep() diffStep {
	if g.ch.intn(3) == 0 {
		k := g.key()
		return step(cmd("SET", k, strings.Repeat("x", bulkLimit-len(g.tok))+g.tok), cmd("STRLEN", k))
	}
	k := g.key()
	raw := "*3\r\n$3\r\nSET\r\n$" + strconv.Itoa(len(k)) + "\r\n" + k + "\r\n$" + strconv.Itoa(bulkLimit+1) + "\r\n"
	return diffStep{raw: raw}
}

func (g *diffGen) authStep() diffStep {
	u := diffUsers[g.ch.intn(len(diffUsers))]
	switch g.ch.intn(4) {
	case 0:
		return step(cmd("AUTH", u.name, "wrong"), g.plainCmd())
	case 1:
		return step(cmd("AUTH", "nopass-given")) // default user has no password
	default:
		return step(cmd("AUTH", u.name, u.password), g.mixedCmd(false))
	}
}
