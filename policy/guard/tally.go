package guard

import (
	"bytes"
	"fmt"
	"strings"
)

// FailsToo is the size to give Tally.Add (and Decide) for a probe whose
// error reply proves that Redis refuses the guarded command too (see
// ErrorRepeats).
const FailsToo = -1

// A Tally decides a Probe plan from its probes' replies as they come in
// Plan.Probes order, a batch at a time. It settles as soon as the replies so
// far decide the command (a sum already over the limit, or an error Redis
// gives the command too), and the remaining probes need not be sent. It
// holds sub-slices of the command's args. Get one from Guard.Tally; the
// zero Tally is not usable.
type Tally struct {
	g       *Guard
	op      *readOp
	q       query
	args    [][]byte
	need    int   // the probes Plan returned
	seen    int   // the replies added so far
	sum     int64 // their sum (a single probe's reply for all but estSum)
	plan    Plan
	settled bool
}

// Tally starts deciding args, a command for which Plan returned Probe. A
// command that is not a guarded read is settled as Pass from the start.
func (g *Guard) Tally(args [][]byte) Tally {
	t := Tally{g: g, args: args, settled: true}
	if len(args) == 0 {
		return t
	}
	var buf [maxGuardedName]byte
	c, ok := g.kinds[string(lowerInto(buf[:0], args[0]))]
	if !ok || c.kind < kindRead || !c.arityOK(len(args)) {
		return t
	}
	t.op = readOps[c.kind-kindRead]
	if t.q, ok = parseQuery(t.op, args); ok {
		t.need, t.settled = t.q.numProbes(), false
	}
	return t
}

// Add adds the replies of the next probes: each a size, or FailsToo. It
// reports whether the tally is settled: Plan then holds the decision.
// More replies than probes settle it as Pass (Redis answers the command).
func (t *Tally) Add(sizes []int64) (settled bool) {
	switch {
	case t.settled:
		return true
	case t.seen+len(sizes) > t.need:
		return t.settle(Plan{})
	}
	for _, n := range sizes {
		if n < 0 {
			return t.settle(Plan{}) // an error reply: let Redis answer the command
		}
	}
	now := t.g.now()
	for i, n := range sizes {
		if t.q.est == estSum || t.q.est == estRank { // whole-key sizes, also of keys then refused
			t.g.learnSize(t.args[t.q.first+t.seen+i], n, 0, now)
		}
		t.sum = satAdd(t.sum, n)
	}
	t.seen += len(sizes)
	switch {
	case t.seen == t.need:
		return t.settle(t.g.judge(t.op, &t.q, t.args, t.q.count(t.sum)))
	case t.q.applyLimit(t.sum) > t.g.cfg.MaxElements: // a sum of sizes only grows
		t.q.verb += " at least"
		return t.settle(t.g.judge(t.op, &t.q, t.args, t.q.applyLimit(t.sum)))
	}
	return false
}

func (t *Tally) settle(p Plan) bool {
	t.plan, t.settled = p, true
	return true
}

// Plan returns the decision: Pass, Reject, or Pass with Audit. Before the
// tally settles it is Pass.
func (t *Tally) Plan() Plan { return t.plan }

// Unchecked is the decision when a probe could not tell its size (why says
// why: no reply, a timeout, an error such as LOADING or NOPERM): the read
// is refused, or audited under oversize=audit, since nothing bounds it. A
// tally already settled keeps its decision.
func (t *Tally) Unchecked(why string) Plan {
	if t.settled {
		return t.plan
	}
	err := fmt.Sprintf("ERR respguard: %s%s refused: could not check the size (%s)",
		upper(t.args[0]), describeKeys(t.args, &t.q), oneLine(why))
	t.settle(t.g.oversize(err, ReasonUnchecked))
	return t.plan
}

// ErrorRepeats reports whether line, a probe's error reply without the '-',
// proves that Redis answers the guarded command with an error too, so that
// it may be forwarded for Redis to answer: the key holds another type
// (every guarded read checks the type of the keys it names before reading
// any; Redis 7.0's SINTER answers an empty set instead when an earlier key
// is missing, which is no bigger), or ZCOUNT/ZLEXCOUNT refused the range
// bounds taken from the command, which its own parser refuses alike. Any
// other error (LOADING, BUSY, NOPERM, MOVED, a failed connection) says
// nothing about the command.
func ErrorRepeats(line []byte) bool {
	return bytes.HasPrefix(line, []byte("WRONGTYPE ")) || bytes.HasPrefix(line, []byte("ERR min or max "))
}

// oneLine replaces CR and LF, which would end an error reply early.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
