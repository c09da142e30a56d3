package guard

import "math"

// estimator is how a read's reply size follows from sizes.
type estimator uint8

const (
	estSum   estimator = iota // the sum of the sizes of keys [first, end), capped by limit
	estRank                   // rangeLen(size of the key, start, stop)
	estCount                  // ZCOUNT/ZLEXCOUNT lo hi, then offset and limit
	estDB                     // DBSIZE
	estSort                   // the sort-size script: the elements SORT loads
)

// query is a parsed guarded read: enough to compute a static bound, look
// sizes up in the cache, build probes and judge their replies. It holds
// sub-slices of args only.
type query struct {
	est         estimator
	first, end  int   // key arguments [first, end)
	start, stop int64 // estRank: the rank range as given
	countCmd    []byte
	lo, hi      []byte    // estCount: bounds in ZCOUNT/ZLEXCOUNT order
	offset      int64     // LIMIT offset (estCount)
	limit       int64     // LIMIT / COUNT; -1 when none
	static      int64     // an upper bound known from the arguments alone; -1 when none
	verb        string    // "would return", "could return up to", "would touch", ...
	advice      string    // overrides readOp.advice when set
	sortArgs    [3][]byte // estSort: the script's ARGV (unsorted flag, LIMIT offset, LIMIT count)
}

// parseQuery reads args as op's command, option by option as Redis's own
// parser does (the last LIMIT or COUNT wins; a repeated flag that Redis
// refuses is refused). ok is false only when Redis would answer the
// command with an error before touching any data: the command is then
// passed and Redis answers it.
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
		ok = q.parseRank(args, op.first)
		return q, ok
	case shapeStream:
		ok = q.parseStream(args)
		return q, ok
	case shapeSort, shapeSortRO:
		ok = q.parseSort(args, op.shape == shapeSortRO)
		return q, ok
	case shapeDB:
		q.est, q.first, q.end, q.verb = estDB, 0, 0, "would scan"
		return q, len(args) == 2
	}
	if form, isZrange := zrangeForms[op.shape]; isZrange {
		ok = q.parseZrange(args, op.first, form)
		return q, ok
	}
	return q, false
}

// parseRank reads LRANGE's "key start stop".
func (q *query) parseRank(args [][]byte, key int) bool {
	if len(args) != key+3 {
		return false
	}
	start, ok1 := parseInt(args[key+1])
	stop, ok2 := parseInt(args[key+2])
	q.est, q.start, q.stop = estRank, start, stop
	q.static = staticRangeLen(start, stop)
	return ok1 && ok2
}

// rangeBy is what a ZRANGE-family command ranges over.
type rangeBy uint8

const (
	byAuto  rangeBy = iota // chosen by BYSCORE/BYLEX, rank by default
	byRank                 // start stop are ranks
	byScore                // min max are scores
	byLex                  // min max are lexicographic bounds
)

// zrangeForm is what one command of the ZRANGE family fixes of the options
// Redis's zrangeGenericCommand otherwise reads from the arguments.
type zrangeForm struct {
	store    bool    // ZRANGESTORE: WITHSCORES is a syntax error
	by       rangeBy // byAuto: BYSCORE or BYLEX may choose (once)
	rev      bool    // the direction is reversed
	dirFixed bool    // REV is a syntax error
}

var zrangeForms = map[shape]zrangeForm{
	shapeZrange:      {},
	shapeZrangeStore: {store: true},
	shapeRevRank:     {by: byRank, rev: true, dirFixed: true},
	shapeScore:       {by: byScore, dirFixed: true},
	shapeRevScore:    {by: byScore, rev: true, dirFixed: true},
	shapeLex:         {by: byLex, dirFixed: true},
	shapeRevLex:      {by: byLex, rev: true, dirFixed: true},
}

// parseZrange reads the options of a ZRANGE-family command as Redis 7.0's
// zrangeGenericCommand does: WITHSCORES any number of times, REV, BYSCORE
// and BYLEX at most once and only where the command leaves them open, the
// last LIMIT wins; LIMIT with a count other than -1 is refused for a rank
// range, WITHSCORES for a lex range.
func (q *query) parseZrange(args [][]byte, key int, f zrangeForm) bool {
	if len(args) < key+3 {
		return false
	}
	withscores, count := false, int64(-1)
	for i := key + 3; i < len(args); i++ {
		left := len(args) - i - 1
		switch a := args[i]; {
		case !f.store && equalFold(a, "withscores"):
			withscores = true
		case equalFold(a, "limit") && left >= 2:
			var ok bool
			if q.offset, count, ok = parseLimit(args[i+1], args[i+2]); !ok {
				return false
			}
			i += 2
		case !f.dirFixed && equalFold(a, "rev"):
			f.rev, f.dirFixed = true, true
		case f.by == byAuto && equalFold(a, "byscore"):
			f.by = byScore
		case f.by == byAuto && equalFold(a, "bylex"):
			f.by = byLex
		default:
			return false
		}
	}
	if f.by == byAuto {
		f.by = byRank
	}
	switch {
	case f.by == byRank && count != -1, f.by == byLex && withscores:
		return false
	case f.by == byRank:
		return q.rankRange(args[key+1], args[key+2])
	}
	q.advice = adviceZby
	q.setCount(args[key+1], args[key+2], f.rev, f.by == byLex)
	q.limit = max(count, -1)
	switch {
	case q.offset < 0: // Redis skips every member for a negative offset
		q.static = 0
	case count >= 0:
		q.static = count
	}
	return true
}

// rankRange makes q a rank range start..stop.
func (q *query) rankRange(start, stop []byte) bool {
	q.advice = adviceZrank
	a, ok1 := parseInt(start)
	b, ok2 := parseInt(stop)
	q.est, q.start, q.stop, q.static = estRank, a, b, staticRangeLen(a, b)
	q.offset = 0
	return ok1 && ok2
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
}

// parseLimit reads LIMIT offset count as Redis does (two integers; a
// negative count means no limit).
func parseLimit(offset, count []byte) (o, c int64, ok bool) {
	o, ok1 := parseInt(offset)
	c, ok2 := parseInt(count)
	return o, c, ok1 && ok2
}

// parseStream reads XRANGE/XREVRANGE key a b [COUNT n] ... as Redis does:
// COUNT may repeat and the last wins; a negative COUNT is 0. Without COUNT
// the bound is XLEN (the range itself cannot be counted without reading it).
func (q *query) parseStream(args [][]byte) bool {
	q.verb = "could return up to"
	if len(args) < 4 {
		return false
	}
	for i := 4; i < len(args); i++ {
		if !equalFold(args[i], "count") || i+1 >= len(args) {
			return false
		}
		n, ok := parseInt(args[i+1])
		if !ok {
			return false
		}
		q.limit, q.static = max(n, 0), max(n, 0)
		i++
	}
	return true
}

// parseSort reads SORT's options as Redis 7.0's sortCommandGeneric does
// (the last LIMIT wins; STORE only for SORT) and sets up the sort-size
// probe, which counts what Redis loads rather than what it returns: any
// BY without '*' (even followed by one with '*') means "don't sort", and
// then a list or sorted set loads just the LIMIT range; a set is always
// loaded whole (and sorted whole with STORE); every other SORT loads and
// sorts the whole collection, LIMIT or not.
func (q *query) parseSort(args [][]byte, readonly bool) bool {
	q.verb, q.est = "would sort", estSort
	q.sortArgs = [3][]byte{argZero, argZero, argMinusOne}
	for i := 2; i < len(args); i++ {
		left := len(args) - i - 1
		switch a := args[i]; {
		case equalFold(a, "asc"), equalFold(a, "desc"), equalFold(a, "alpha"):
		case equalFold(a, "limit") && left >= 2:
			if _, _, ok := parseLimit(args[i+1], args[i+2]); !ok {
				return false
			}
			q.sortArgs[1], q.sortArgs[2] = args[i+1], args[i+2]
			i += 2
		case !readonly && equalFold(a, "store") && left >= 1:
			i++
		case equalFold(a, "by") && left >= 1:
			if !containsByte(args[i+1], '*') {
				q.sortArgs[0], q.verb = argOne, "would load"
			}
			i++
		case equalFold(a, "get") && left >= 1:
			i++
		default:
			return false
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
