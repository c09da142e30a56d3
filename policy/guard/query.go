package guard

import "math"

// estimator is how a read's reply size follows from sizes.
type estimator uint8

const (
	estSum   estimator = iota // the sum of the sizes of keys [first, end), capped by limit
	estRank                   // rangeLen(size of the key, start, stop)
	estCount                  // ZCOUNT/ZLEXCOUNT lo hi, then offset and limit
	estDB                     // DBSIZE
)

// query is a parsed guarded read: enough to compute a static bound, look
// sizes up in the cache, build probes and judge their replies. It holds
// sub-slices of args only.
type query struct {
	est         estimator
	first, end  int   // key arguments [first, end)
	start, stop int64 // estRank: the rank range as given
	countCmd    []byte
	lo, hi      []byte // estCount: bounds in ZCOUNT/ZLEXCOUNT order
	offset      int64  // LIMIT offset (estCount)
	limit       int64  // LIMIT / COUNT; -1 when none
	static      int64  // an upper bound known from the arguments alone; -1 when none
	verb        string // "would return", "could return up to", "would touch", ...
	advice      string // overrides readOp.advice when set
}

// parseQuery reads args as op's command. ok is false when the arguments are
// not ones the guard understands (Redis will answer them with an error, or
// they are harmless): the command is then passed.
func parseQuery(op *readOp, args [][]byte) (q query, ok bool) {
	q = query{est: estSum, first: op.first, end: op.first + 1, limit: -1, static: -1, verb: "would return"}
	if op.first >= len(args) {
		return q, false
	}
	switch op.shape {
	case shapeKey:
		return q, len(args) == 2
	case shapeKeys:
		q.end, q.verb = len(args), "would touch"
		return q, true
	case shapeRank:
		ok = q.parseRank(args, op.first, true)
		return q, ok
	case shapeZrange:
		ok = q.parseZrange(args, op.first)
		return q, ok
	case shapeScore, shapeRevScore, shapeLex, shapeRevLex:
		ok = q.parseZby(args, op)
		return q, ok
	case shapeStream:
		ok = q.parseStream(args)
		return q, ok
	case shapeSort:
		ok = q.parseSort(args)
		return q, ok
	case shapeDB:
		q.est, q.first, q.end, q.verb = estDB, 0, 0, "would scan"
		return q, len(args) == 2
	}
	return q, false
}

// parseRank reads "key start stop [WITHSCORES]" at args[key:].
func (q *query) parseRank(args [][]byte, key int, withscores bool) bool {
	if len(args) < key+3 {
		return false
	}
	start, ok1 := parseInt(args[key+1])
	stop, ok2 := parseInt(args[key+2])
	rest := args[key+3:]
	okRest := len(rest) == 0 || (withscores && len(rest) == 1 && equalFold(rest[0], "withscores"))
	q.est, q.start, q.stop = estRank, start, stop
	q.static = staticRangeLen(start, stop)
	return ok1 && ok2 && okRest
}

// parseZrange reads Redis 6.2's ZRANGE / ZRANGESTORE syntax.
func (q *query) parseZrange(args [][]byte, key int) bool {
	if len(args) < key+3 {
		return false
	}
	var byScore, byLex, rev, withLimit bool
	for i := key + 3; i < len(args); i++ {
		switch a := args[i]; {
		case equalFold(a, "byscore"):
			byScore = true
		case equalFold(a, "bylex"):
			byLex = true
		case equalFold(a, "rev"):
			rev = true
		case equalFold(a, "withscores"):
		case equalFold(a, "limit") && i+2 < len(args):
			if !q.parseLimit(args[i+1], args[i+2]) {
				return false
			}
			withLimit, i = true, i+2
		default:
			return false
		}
	}
	switch {
	case byScore && byLex:
		return false
	case byScore || byLex:
		q.advice = adviceZby
		q.setCount(args[key+1], args[key+2], rev, byLex)
		return true
	case withLimit: // LIMIT is only valid with BYSCORE/BYLEX
		return false
	}
	q.advice = adviceZrank
	start, ok1 := parseInt(args[key+1])
	stop, ok2 := parseInt(args[key+2])
	q.est, q.start, q.stop, q.static = estRank, start, stop, staticRangeLen(start, stop)
	return ok1 && ok2
}

// parseZby reads ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX.
func (q *query) parseZby(args [][]byte, op *readOp) bool {
	if len(args) < 4 {
		return false
	}
	lex := op.shape == shapeLex || op.shape == shapeRevLex
	rev := op.shape == shapeRevScore || op.shape == shapeRevLex
	for i := 4; i < len(args); i++ {
		switch {
		case !lex && equalFold(args[i], "withscores"):
		case equalFold(args[i], "limit") && i+2 < len(args):
			if !q.parseLimit(args[i+1], args[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	q.setCount(args[2], args[3], rev, lex)
	return true
}

// setCount makes q count the members between a and b (given in the
// command's order: max first when rev) with ZCOUNT or ZLEXCOUNT.
func (q *query) setCount(a, b []byte, rev, lex bool) {
	q.est, q.lo, q.hi, q.countCmd = estCount, a, b, cmdZcount
	if rev {
		q.lo, q.hi = b, a
	}
	if lex {
		q.countCmd = cmdZlexcount
	}
	if q.offset < 0 { // Redis returns nothing for a negative offset
		q.static = 0
	}
}

// parseLimit reads LIMIT offset count. A negative count means no limit.
func (q *query) parseLimit(offset, count []byte) bool {
	o, ok1 := parseInt(offset)
	c, ok2 := parseInt(count)
	q.offset = o
	if c >= 0 {
		q.limit, q.static = c, c
	}
	return ok1 && ok2
}

// parseStream reads XRANGE/XREVRANGE key a b [COUNT n]; without COUNT the
// bound is XLEN (the range itself cannot be counted without reading it).
func (q *query) parseStream(args [][]byte) bool {
	q.verb = "could return up to"
	switch len(args) {
	case 4:
		return true
	case 6:
		n, ok := parseInt(args[5])
		q.limit, q.static = max(n, 0), max(n, 0) // COUNT <= 0 returns nothing
		return ok && equalFold(args[4], "count")
	}
	return false
}

// parseSort finds whether SORT sorts (BY with a '*' pattern, or no BY) and
// its LIMIT. Only an unsorted SORT with a LIMIT is bounded by the LIMIT
// (Redis then loads just that range of a list or sorted set); any sorting
// SORT loads and sorts the whole collection, LIMIT or not.
func (q *query) parseSort(args [][]byte) bool {
	q.verb = "would sort"
	sorts, count := true, int64(-1)
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case equalFold(a, "by") && i+1 < len(args):
			sorts = containsByte(args[i+1], '*')
			i++
		case equalFold(a, "limit") && i+2 < len(args):
			c, ok := parseInt(args[i+2])
			if _, ok2 := parseInt(args[i+1]); !ok || !ok2 {
				return false
			}
			count, i = c, i+2
		case (equalFold(a, "get") || equalFold(a, "store")) && i+1 < len(args):
			i++
		case equalFold(a, "asc"), equalFold(a, "desc"), equalFold(a, "alpha"):
		default:
			return false
		}
	}
	if !sorts {
		q.verb = "would return"
		if count >= 0 {
			q.static = count
		}
	}
	return true
}

// staticRangeLen bounds a rank range's length without the collection's
// size: when start and stop have the same sign the range cannot be longer
// than stop-start+1. It returns -1 when the signs differ.
func staticRangeLen(start, stop int64) int64 {
	if (start < 0) != (stop < 0) {
		return -1
	}
	if start > stop {
		return 0
	}
	if stop-start >= math.MaxInt64-1 || stop-start < 0 {
		return math.MaxInt64
	}
	return stop - start + 1
}

// rangeLen is the number of elements LRANGE/ZRANGE start stop returns from
// a collection of size n, following Redis's index arithmetic (negative
// indexes count from the end; out-of-range indexes are clamped).
func rangeLen(n, start, stop int64) int64 {
	if start < 0 {
		start = max(n+start, 0)
	}
	if stop < 0 {
		stop = n + stop
	}
	if start > stop || start >= n {
		return 0
	}
	return min(stop, n-1) - start + 1
}

// applyLimit applies LIMIT offset count (or COUNT) to n matching elements.
func (q *query) applyLimit(n int64) int64 {
	if q.offset < 0 {
		return 0
	}
	n = max(n-q.offset, 0)
	if q.limit >= 0 {
		n = min(n, q.limit)
	}
	return n
}

// parseInt parses b as Redis's string2ll does: an optional '-', decimal
// digits, no leading zeros, no '+', no spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || (digits[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var u uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true // -u wraps to MinInt64 for 1<<63
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	}
	return 0, false
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}
