package guard

import "fmt"

// planRead bounds a read: Pass when the arguments alone bound it (LRANGE 0
// 99, LIMIT 0 100, XRANGE ... COUNT 10) or the size cache shows it small;
// Reject (or an audited Pass) when the cache shows it too big or it names
// more keys than the limit; otherwise Probe for the sizes.
func (g *Guard) planRead(op *readOp, args [][]byte) Plan {
	q, ok := parseQuery(op, args)
	if !ok || (q.static >= 0 && q.static <= g.cfg.MaxElements) {
		return Plan{}
	}
	if keys := int64(q.end - q.first); keys > g.cfg.MaxElements {
		return g.tooManyKeys(&q, args, keys)
	}
	if n, ok := g.cachedCount(&q, args); ok {
		g.stats.cacheHits.Add(1)
		return g.judge(op, &q, args, n)
	}
	probes := q.probes(op, args)
	g.stats.probePlans.Add(1)
	g.stats.probes.Add(uint64(len(probes)))
	return Plan{Action: Probe, Probes: probes}
}

// cachedCount computes the reply size from cached sizes. For a score or lex
// range it only answers when the whole sorted set is small enough.
func (g *Guard) cachedCount(q *query, args [][]byte) (int64, bool) {
	if q.est == estDB {
		return 0, false // DBSIZE is per database; the guard does not know which
	}
	now := g.now()
	var sum int64
	for _, key := range args[q.first:q.end] {
		n, ok := g.sizes.get(key, now)
		if !ok {
			return 0, false
		}
		sum = satAdd(sum, n)
	}
	switch q.est {
	case estRank:
		return rangeLen(sum, q.start, q.stop), true
	case estCount, estSort: // the whole collection bounds what is loaded
		return sum, sum <= g.cfg.MaxElements
	}
	return q.applyLimit(sum), true
}

// numProbes is how many probes q needs: one per key, or one range count.
func (q *query) numProbes() int {
	if q.est == estCount || q.est == estDB || q.est == estSort {
		return 1
	}
	return q.end - q.first
}

// probes builds the commands whose integer replies give q's sizes.
func (q *query) probes(op *readOp, args [][]byte) [][][]byte {
	switch q.est {
	case estDB:
		return [][][]byte{{cmdDBSize}}
	case estCount:
		return [][][]byte{{q.countCmd, args[q.first], q.lo, q.hi}}
	case estSort:
		return [][][]byte{{argEval, argSortSizeScript, argOne, args[q.first], q.sortArgs[0], q.sortArgs[1], q.sortArgs[2]}}
	}
	keys := args[q.first:q.end]
	probes := make([][][]byte, len(keys))
	flat := make([][]byte, 0, 2*len(keys))
	for i, key := range keys {
		start := len(flat)
		flat = append(flat, op.sizeCmd, key)
		probes[i] = flat[start:len(flat):len(flat)]
	}
	return probes
}

// count computes the reply size from the sum of the probes' replies (the
// one reply, for all but estSum).
func (q *query) count(sum int64) int64 {
	switch q.est {
	case estRank:
		return rangeLen(sum, q.start, q.stop)
	case estDB, estSort:
		return sum
	}
	return q.applyLimit(sum)
}

// judge passes n elements up to the limit and refuses (or audits) more.
func (g *Guard) judge(op *readOp, q *query, args [][]byte, n int64) Plan {
	if n <= g.cfg.MaxElements {
		return Plan{}
	}
	advice := op.advice
	if q.advice != "" {
		advice = q.advice
	}
	return g.oversize(fmt.Sprintf("ERR respguard: %s%s %s %d %s (limit %d); %s",
		upper(args[0]), describeKeys(args, q), q.verb, n, op.noun, g.cfg.MaxElements, advice), ReasonOversize)
}

// tooManyKeys refuses (or audits) a read naming more keys than the limit:
// Redis looks every one of them up whatever their sizes, and probing them
// all would flood the connection with as many probes.
func (g *Guard) tooManyKeys(q *query, args [][]byte, keys int64) Plan {
	return g.oversize(fmt.Sprintf("ERR respguard: %s%s would look up %d keys (limit %d); name fewer keys per command",
		upper(args[0]), describeKeys(args, q), keys, g.cfg.MaxElements), ReasonOversize)
}

// oversize refuses a read with err, or under oversize=audit lets it
// through flagged.
func (g *Guard) oversize(err, reason string) Plan {
	if g.cfg.Oversize == OversizeAudit {
		g.stats.audited.Add(1)
		return Plan{Err: err, Reason: reason, Audit: true}
	}
	g.stats.oversize.Add(1)
	return Plan{Action: Reject, Err: err, Reason: reason}
}

// describeKeys is " on 'key'", " on 3 keys from 'key'" or "" (KEYS).
func describeKeys(args [][]byte, q *query) string {
	switch n := q.end - q.first; {
	case n <= 0:
		return ""
	case n == 1:
		return " on " + quoteKey(args[q.first])
	default:
		return fmt.Sprintf(" on %d keys from %s", n, quoteKey(args[q.first]))
	}
}

// satAdd adds non-negative sizes without overflowing.
func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
