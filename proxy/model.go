package proxy

import (
	"strings"
	"sync/atomic"

	"github.com/respguard/respguard/policy"
)

// commandModel is respguard's one model of what a command does to the
// connection that carries it: how many replies it produces and which
// connection state it changes. It is derived from a command table (COMMAND's
// flags) plus the exceptions below, and decides where a command may go:
// only a command known to produce exactly one reply and to change no
// connection state goes on a shared connection; every other one is answered
// by respguard, moved to a dedicated connection, sent over a connection of
// its own, or refused. A command the model does not know is never shared.
//
// A model is immutable and safe for concurrent use.
type commandModel struct {
	table  *policy.Commands
	byName map[string]*commandClass // lower-case top-level names
}

// replies says how many replies a command produces on its connection.
type replies uint8

const (
	repliesOne        replies = iota // exactly one
	repliesNone                      // none (REPLCONF ACK/GETACK)
	repliesPerChannel                // one per channel argument (SUBSCRIBE and UNSUBSCRIBE families)
	repliesStream                    // an open-ended stream (MONITOR, SYNC)
	repliesUnknown                   // the model does not know the command
)

// stateChange is the set of connection states a command changes.
type stateChange uint16

const (
	changesDB            stateChange       = 1 << iota // SELECT
	changesProtocol                                    // HELLO
	changesSubscriptions                               // SUBSCRIBE, UNSUBSCRIBE...
	changesTransaction                                 // MULTI, EXEC, DISCARD, WATCH, UNWATCH
	changesReplyMode                                   // CLIENT REPLY
	changesTracking                                    // CLIENT TRACKING, CLIENT CACHING
	changesName                                        // CLIENT SETNAME, HELLO SETNAME
	changesUser                                        // AUTH, HELLO AUTH
	changesOther                                       // flags respguard does not track (READONLY, ASKING, CLIENT NO-EVICT, replication)
	changesAll           = ^stateChange(0)             // RESET, QUIT, unknown commands
)

// inMulti says what a command does when a client sends it inside MULTI.
type inMulti uint8

const (
	multiQueue     inMulti = iota // Redis queues it; its reply is one element of EXEC's array
	multiImmediate                // Redis runs it at once (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET)
	multiRefuse                   // respguard refuses it, which aborts the transaction at EXEC
	multiLocal                    // respguard answers QUEUED and puts its own answer in EXEC's array
)

// commandClass is the model's verdict on one command (or subcommand).
type commandClass struct {
	name    string // interned lower-case name for telemetry ("other" when unknown)
	kind    kind   // how respguard routes it
	replies replies
	changes stateChange
	inMulti inMulti
	// inPubSub: Redis runs it for a RESP2 client in Pub/Sub mode (it refuses
	// every other command there; see session.pubsubRefusal).
	inPubSub bool
	subs     map[string]*commandClass // a container's subcommands that differ from it, by lower-case name

	container bool // it has subcommands: CLIENT LIST names it "name|subcommand"
}

// shareable reports whether the command may go on a shared connection.
func (c *commandClass) shareable() bool {
	return c.kind == kindForward && c.replies == repliesOne && c.changes == 0
}

// exception is an entry of the table of commands whose effect COMMAND's
// flags do not tell.
type exception struct {
	kind    kind
	replies replies
	changes stateChange
	inMulti inMulti
}

// exceptions lists the commands (and "container|subcommand"s) that change
// connection state, do not produce exactly one reply, or need a route of
// their own. Everything else takes its class from its flags (see classOf).
var exceptions = map[string]exception{
	"hello":  {kindLocal, repliesOne, changesProtocol | changesName | changesUser, multiRefuse},
	"auth":   {kindLocal, repliesOne, changesUser, multiLocal},
	"select": {kindLocal, repliesOne, changesDB, multiQueue}, // inside MULTI: applied after EXEC
	"quit":   {kindLocal, repliesOne, changesAll, multiImmediate},
	"reset":  {kindLocal, repliesOne, changesAll, multiImmediate},

	"multi":   {kindMulti, repliesOne, changesTransaction, multiImmediate},
	"exec":    {kindTxEnd, repliesOne, changesTransaction, multiImmediate},
	"discard": {kindTxEnd, repliesOne, changesTransaction, multiImmediate},
	"watch":   {kindWatch, repliesOne, changesTransaction, multiImmediate},
	"unwatch": {kindUnwatch, repliesOne, changesTransaction, multiQueue},

	"wait":    {kindBlocking, repliesOne, 0, multiQueue},
	"waitaof": {kindBlocking, repliesOne, 0, multiQueue},

	"subscribe":    {kindSubscribe, repliesPerChannel, changesSubscriptions, multiRefuse},
	"psubscribe":   {kindSubscribe, repliesPerChannel, changesSubscriptions, multiRefuse},
	"ssubscribe":   {kindSubscribe, repliesPerChannel, changesSubscriptions, multiRefuse},
	"unsubscribe":  {kindUnsubscribe, repliesPerChannel, changesSubscriptions, multiLocal}, // refused when subscribed
	"punsubscribe": {kindUnsubscribe, repliesPerChannel, changesSubscriptions, multiLocal},
	"sunsubscribe": {kindUnsubscribe, repliesPerChannel, changesSubscriptions, multiLocal},
	"publish":      {kindForward, repliesOne, 0, multiQueue},
	"spublish":     {kindForward, repliesOne, 0, multiQueue},
	"pubsub":       {kindForward, repliesOne, 0, multiQueue},
	"monitor":      {kindMonitor, repliesStream, changesOther, multiRefuse},

	"replconf":  {kindReplconf, repliesNone, changesOther, multiRefuse},
	"sync":      {kindReplicate, repliesStream, changesOther, multiRefuse},
	"psync":     {kindReplicate, repliesStream, changesOther, multiRefuse},
	"readonly":  {kindIsolated, repliesOne, changesOther, multiRefuse},
	"readwrite": {kindIsolated, repliesOne, changesOther, multiRefuse},
	"asking":    {kindIsolated, repliesOne, changesOther, multiRefuse},

	"shutdown":      {kindControl, repliesOne, 0, multiQueue},
	"script|kill":   {kindControl, repliesOne, 0, multiQueue},
	"function|kill": {kindControl, repliesOne, 0, multiQueue},

	"client|setname":  {kindLocal, repliesOne, changesName, multiLocal},
	"client|getname":  {kindLocal, repliesOne, 0, multiLocal},
	"client|reply":    {kindLocal, repliesOne, changesReplyMode, multiRefuse},
	"client|tracking": {kindClient, repliesOne, changesTracking, multiRefuse},
	"client|caching":  {kindClient, repliesOne, changesTracking, multiRefuse},

	// The redirect target's id in their reply is translated (tracking.go).
	"client|getredir":     {kindClient, repliesOne, 0, multiQueue},
	"client|trackinginfo": {kindClient, repliesOne, 0, multiQueue},

	"client|no-evict": {kindLocal, repliesOne, 0, multiLocal},
	// Redis 7.2's, should the table be a newer server's: they set state on
	// the connection that carries them, so never a shared one.
	"client|no-touch": {kindIsolated, repliesOne, changesOther, multiRefuse},
	"client|setinfo":  {kindIsolated, repliesOne, changesOther, multiRefuse},
	"client|id":       {kindLocal, repliesOne, 0, multiLocal},
	"client|info":     {kindLocal, repliesOne, 0, multiLocal},
	"client|list":     {kindLocal, repliesOne, 0, multiLocal},
	"client|kill":     {kindLocal, repliesOne, 0, multiRefuse},
	"client|unblock":  {kindLocal, repliesOne, 0, multiRefuse},
	"client|pause":    {kindLocal, repliesOne, 0, multiLocal},
	"client|unpause":  {kindLocal, repliesOne, 0, multiLocal},

	"acl":  {kindACL, repliesOne, 0, multiQueue},
	"info": {kindInfo, repliesOne, 0, multiQueue},

	// respguard's own command: never forwarded; inside MULTI it answers
	// QUEUED and runs when EXEC does, as Redis runs CONFIG or CLIENT LIST.
	"respguard": {kindLocal, repliesOne, 0, multiLocal},
}

// pubsubContext lists the commands Redis 7.0 runs for a RESP2 client in
// Pub/Sub mode (processCommand's check).
var pubsubContext = map[string]bool{
	"subscribe": true, "psubscribe": true, "ssubscribe": true,
	"unsubscribe": true, "punsubscribe": true, "sunsubscribe": true,
	"ping": true, "quit": true, "reset": true,
}

// unknownClass is the class of a command the model does not know: it runs
// alone on a dedicated connection that is destroyed afterwards.
var unknownClass = &commandClass{name: "other", kind: kindUnknown, replies: repliesUnknown, changes: changesAll, inMulti: multiQueue}

// newCommandModel derives the model from a command table.
func newCommandModel(table *policy.Commands) *commandModel {
	m := &commandModel{table: table, byName: map[string]*commandClass{}}
	for _, info := range table.List() {
		c := classOf(info.Name, info.Flags)
		for _, sub := range info.Subcommands {
			if _, ok := exceptions[sub.Name]; !ok {
				continue
			}
			if c.subs == nil {
				c.subs = map[string]*commandClass{}
			}
			_, short, _ := strings.Cut(sub.Name, "|")
			c.subs[short] = classOf(sub.Name, sub.Flags)
			c.subs[short].container = true
		}
		c.container = len(info.Subcommands) > 0
		m.byName[info.Name] = c
	}
	return m
}

// classOf classifies one command from the exceptions, or else its flags: a
// blocking command holds its connection; any other Pub/Sub command the
// table does not list is not trusted on a shared connection.
func classOf(name string, flags []string) *commandClass {
	top, _, _ := strings.Cut(name, "|")
	c := &commandClass{name: top, kind: kindForward, inPubSub: pubsubContext[name]}
	if e, ok := exceptions[name]; ok {
		c.kind, c.replies, c.changes, c.inMulti = e.kind, e.replies, e.changes, e.inMulti
		return c
	}
	for _, f := range flags {
		switch f {
		case "blocking":
			c.kind = kindBlocking
		case "pubsub":
			c.kind, c.replies, c.changes = kindUnknown, repliesUnknown, changesAll
		}
	}
	return c
}

// classify returns the class of the command args runs; lower is args[0] in
// lower case. It does not allocate. An unknown subcommand of a known
// container takes the container's class: the table is the upstream's own,
// so Redis answers it with one error and changes nothing.
func (m *commandModel) classify(lower []byte, args [][]byte) *commandClass {
	c, ok := m.byName[string(lower)]
	if !ok {
		return unknownClass
	}
	if c.subs != nil && len(args) > 1 {
		var buf [24]byte
		if sc, ok := c.subs[string(lowerName(buf[:], args[1]))]; ok {
			return sc
		}
	}
	return c
}

// modelCache holds the model of the command table last used.
type modelCache struct{ p atomic.Pointer[commandModel] }

// get returns the model of table, deriving it once per table.
func (mc *modelCache) get(table *policy.Commands) *commandModel {
	if m := mc.p.Load(); m != nil && m.table == table {
		return m
	}
	m := newCommandModel(table)
	mc.p.Store(m)
	return m
}
