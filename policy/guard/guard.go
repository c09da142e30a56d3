package guard

import (
	"strconv"
	"time"

	"github.com/respguard/respguard/policy"
)

// Action is what the proxy does with a command.
type Action uint8

const (
	Pass    Action = iota // forward the command unchanged
	Rewrite               // forward Plan.Args instead
	Reject                // reply "-" + Plan.Err without contacting Redis
	Probe                 // run Plan.Probes, then call Decide with their replies
)

func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Rewrite:
		return "rewrite"
	case Reject:
		return "reject"
	case Probe:
		return "probe"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Reasons reported in Plan.Reason (metric label values).
const (
	ReasonUnlink       = "unlink"
	ReasonFlushAsync   = "flush_async"
	ReasonOversize     = "oversize"
	ReasonStreamMaxlen = "stream_maxlen"
	ReasonRequireTTL   = "require_ttl"
	ReasonUnchecked    = "unchecked" // a read whose probes could not tell its size
)

// Plan is the guard's decision about one command. The zero value is Pass.
//
// Ownership: Args and Probes are built from three kinds of memory: dst (the
// caller's slice passed to Guard.Plan), byte slices owned by the Guard that
// are shared and read-only (command names, the DEL script, numbers), and
// sub-slices of the caller's args (keys and arguments are not copied). They
// stay valid as long as args' memory does; the caller must send them before
// it reuses args and must never modify their bytes. The Guard keeps no
// reference to args after Plan or Decide returns.
type Plan struct {
	Action Action
	// Args is the command to send instead (Rewrite).
	Args [][]byte
	// Err is the error line without the leading '-' (Reject), and for an
	// audited read (Audit) the text it would have been refused with.
	Err string
	// Reason names the rule that acted, for metrics and logs; "" for a
	// plain Pass.
	Reason string
	// Audit is set (with Action Pass) when oversize=audit let through a read
	// that would have been refused.
	Audit bool
	// Probes are commands whose integer replies Decide (or a Tally) needs
	// (Probe); a read over many keys has one per key, at most MaxElements. Each
	// is a read-only command: HLEN, SCARD, LLEN, ZCARD, XLEN, ZCOUNT,
	// ZLEXCOUNT, DBSIZE or an EVAL of a read-only script. Send them on the
	// connection (and database) the command will use.
	Probes [][][]byte
}

// Guard holds the configuration and the learned state (size cache, big-key
// and hot-key tables). It is safe for concurrent use; everything it learns
// is bounded in memory whatever the key cardinality.
type Guard struct {
	// Immutable after New.
	cfg        Config
	cmds       *policy.Commands
	filter     nameFilter         // rejects unguarded names before any lookup
	kinds      map[string]guarded // lower-case name -> what to do, enabled features only
	minElemArg []byte             // ARGV of the DEL script
	minByteArg []byte
	maxlenArgs [][]byte // stream_maxlen[i].Maxlen as decimal
	epoch      time.Time

	// Internally synchronized.
	sizes *sizeCache
	big   *bigKeys
	hot   *hotKeys
	stats counters

	now func() int64 // nanoseconds since epoch; replaced by tests
}

// New builds a Guard. cfg is validated; cmds is the command table used to
// check arity (nil means policy.BuiltinCommands()). Commands whose argument
// count Redis would refuse are passed through so that Redis answers them.
func New(cfg Config, cmds *policy.Commands) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cmds == nil {
		cmds = policy.BuiltinCommands()
	}
	g := &Guard{cfg: cfg.withDefaults(), cmds: cmds, epoch: time.Now()}
	g.now = func() int64 { return int64(time.Since(g.epoch)) }
	g.minElemArg = strconv.AppendInt(nil, g.cfg.Unlink.MinElements, 10)
	g.minByteArg = strconv.AppendInt(nil, g.cfg.Unlink.MinBytes, 10)
	for _, s := range g.cfg.StreamMaxlen {
		g.maxlenArgs = append(g.maxlenArgs, strconv.AppendInt(nil, s.Maxlen, 10))
	}
	g.kinds = make(map[string]guarded)
	for name, k := range enabledKinds(&g.cfg) {
		g.kinds[name] = guarded{kind: k, arity: arity(cmds, name)}
		g.filter.add(name)
	}
	g.sizes = newSizeCache(g.cfg.SizeCacheTTL)
	g.big = newBigKeys(g.cfg.TopK)
	g.hot = newHotKeys(g.cfg.TopK)
	return g, nil
}

// Config returns the configuration in effect, defaults filled in.
func (g *Guard) Config() Config { return g.cfg }

// Plan decides what to do with args (args[0] is the command name, any case)
// before it is routed. dst is reused for Plan.Args when it has the capacity
// (pass dst[:0] of a per-session slice to avoid allocating). Commands the
// guard does not look at return Pass without allocating.
func (g *Guard) Plan(args [][]byte, dst [][]byte) Plan {
	if len(args) == 0 || !g.filter.mayMatch(args[0]) {
		return Plan{}
	}
	var buf [maxGuardedName]byte
	c, ok := g.kinds[string(lowerInto(buf[:0], args[0]))]
	if !ok || !c.arityOK(len(args)) {
		return Plan{}
	}
	switch k := c.kind; {
	case k == kindDel:
		return g.planDel(args, dst)
	case k == kindFlush:
		return g.planFlush(args, dst)
	case k == kindXadd:
		return g.planXadd(args, dst)
	case k >= kindRead:
		return g.planRead(readOps[k-kindRead], args)
	}
	return g.planRequireTTL(c.kind, args)
}

// Decide finishes a Probe plan in one go: args is the command given to
// Plan, sizes the probes' integer replies in Plan.Probes order, FailsToo
// for an error reply that Redis gives the command too (see ErrorRepeats).
// It returns Pass (possibly with Audit) or Reject; when anything is amiss (a
// FailsToo, a length mismatch) it returns Pass and lets Redis answer. See
// Tally to decide from the replies a batch at a time.
func (g *Guard) Decide(args [][]byte, sizes []int64) Plan {
	t := g.Tally(args)
	if len(sizes) != t.need {
		return Plan{}
	}
	t.Add(sizes)
	return t.Plan()
}

// guarded is a guarded command: what to do and the arity Redis checks.
type guarded struct {
	kind  kind
	arity int // as in COMMAND: > 0 exact, < 0 at least -arity, 0 unknown
}

// arity looks name's arity up in cmds; 0 if cmds does not know it.
func arity(cmds *policy.Commands, name string) int {
	if info := cmds.Info([][]byte{[]byte(name)}); info != nil {
		return info.Arity
	}
	return 0
}

// arityOK reports whether Redis would accept argc arguments (the name
// included). Unknown arities are judged by the guard's own parsing.
func (c guarded) arityOK(argc int) bool {
	if c.arity >= 0 {
		return c.arity == 0 || argc == c.arity
	}
	return argc >= -c.arity
}

// lowerInto appends the ASCII lower-case form of s to dst.
func lowerInto(dst, s []byte) []byte {
	for _, b := range s {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}
