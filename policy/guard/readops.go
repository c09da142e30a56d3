package guard

// shape is how a guarded read lays out its arguments.
type shape uint8

const (
	shapeKey         shape = iota // CMD key: the whole collection
	shapeKeys                     // CMD key [key ...]: the sum of the collections
	shapeRank                     // LRANGE key start stop: a rank range
	shapeZrange                   // ZRANGE key a b [BYSCORE|BYLEX] [REV] [LIMIT o c] [WITHSCORES]
	shapeZrangeStore              // ZRANGESTORE dst key a b [BYSCORE|BYLEX] [REV] [LIMIT o c]
	shapeRevRank                  // ZREVRANGE key start stop [WITHSCORES]
	shapeScore                    // CMD key min max [WITHSCORES] [LIMIT o c]
	shapeRevScore                 // CMD key max min [WITHSCORES] [LIMIT o c]
	shapeLex                      // CMD key min max [LIMIT o c]
	shapeRevLex                   // CMD key max min [LIMIT o c]
	shapeStream                   // CMD key a b [COUNT n]
	shapeSort                     // SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE d]
	shapeSortRO                   // SORT_RO: SORT without STORE
	shapeDB                       // KEYS pattern: every key of the database
)

// readOp describes one guarded read command.
type readOp struct {
	lower   string // the command's lower-case name
	first   int    // index of the (first) key argument
	shape   shape
	sizeCmd []byte // O(1) size of one key; nil when the shape brings its own probe
	noun    string // what the reply is made of
	advice  string // what to use instead
}

var (
	cmdHlen      = []byte("HLEN")
	cmdScard     = []byte("SCARD")
	cmdLlen      = []byte("LLEN")
	cmdZcard     = []byte("ZCARD")
	cmdXlen      = []byte("XLEN")
	cmdZcount    = []byte("ZCOUNT")
	cmdZlexcount = []byte("ZLEXCOUNT")
	cmdDBSize    = []byte("DBSIZE")
	argOne       = []byte("1")
	argZero      = []byte("0")
	argMinusOne  = []byte("-1")
)

const (
	adviceHscan = "iterate with HSCAN"
	adviceSscan = "iterate with SSCAN"
	adviceZrank = "page with a bounded rank range or iterate with ZSCAN"
	adviceZby   = "page with LIMIT offset count or iterate with ZSCAN"
)

// readOps are the reads the guard bounds (oversize != off).
var readOps = []*readOp{
	{lower: "hgetall", first: 1, shape: shapeKey, sizeCmd: cmdHlen, noun: "fields", advice: adviceHscan},
	{lower: "hkeys", first: 1, shape: shapeKey, sizeCmd: cmdHlen, noun: "fields", advice: adviceHscan},
	{lower: "hvals", first: 1, shape: shapeKey, sizeCmd: cmdHlen, noun: "values", advice: adviceHscan},
	{lower: "smembers", first: 1, shape: shapeKey, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "sinter", first: 1, shape: shapeKeys, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "sunion", first: 1, shape: shapeKeys, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "sdiff", first: 1, shape: shapeKeys, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "sinterstore", first: 2, shape: shapeKeys, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "sunionstore", first: 2, shape: shapeKeys, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "sdiffstore", first: 2, shape: shapeKeys, sizeCmd: cmdScard, noun: "members", advice: adviceSscan},
	{lower: "lrange", first: 1, shape: shapeRank, sizeCmd: cmdLlen, noun: "elements",
		advice: "page with bounded LRANGE start stop"},
	{lower: "zrange", first: 1, shape: shapeZrange, sizeCmd: cmdZcard, noun: "members"},
	{lower: "zrangestore", first: 2, shape: shapeZrangeStore, sizeCmd: cmdZcard, noun: "members"},
	{lower: "zrevrange", first: 1, shape: shapeRevRank, sizeCmd: cmdZcard, noun: "members", advice: adviceZrank},
	{lower: "zrangebyscore", first: 1, shape: shapeScore, sizeCmd: cmdZcard, noun: "members", advice: adviceZby},
	{lower: "zrevrangebyscore", first: 1, shape: shapeRevScore, sizeCmd: cmdZcard, noun: "members", advice: adviceZby},
	{lower: "zrangebylex", first: 1, shape: shapeLex, sizeCmd: cmdZcard, noun: "members", advice: adviceZby},
	{lower: "zrevrangebylex", first: 1, shape: shapeRevLex, sizeCmd: cmdZcard, noun: "members", advice: adviceZby},
	{lower: "xrange", first: 1, shape: shapeStream, sizeCmd: cmdXlen, noun: "entries", advice: "add COUNT and page"},
	{lower: "xrevrange", first: 1, shape: shapeStream, sizeCmd: cmdXlen, noun: "entries", advice: "add COUNT and page"},
	{lower: "sort", first: 1, shape: shapeSort, noun: "elements",
		advice: "sort client-side, or use BY nosort with LIMIT"},
	{lower: "sort_ro", first: 1, shape: shapeSortRO, noun: "elements",
		advice: "sort client-side, or use BY nosort with LIMIT"},
	{lower: "keys", first: 0, shape: shapeDB, noun: "keys", advice: "iterate with SCAN"},
}

// sortSizeScript returns the number of elements SORT loads from KEYS[1],
// following Redis 7.0's sortCommandGeneric: a list, set or sorted set's
// length, except that an unsorted (ARGV[1] == '1') list or sorted set loads
// only its LIMIT range (offset ARGV[2], count ARGV[3]); 0 for anything else
// (SORT then fails or returns nothing). Read-only and O(1).
const sortSizeScript = `local t = redis.call('TYPE', KEYS[1]).ok
local n = 0
if t == 'list' then n = redis.call('LLEN', KEYS[1])
elseif t == 'set' then n = redis.call('SCARD', KEYS[1])
elseif t == 'zset' then n = redis.call('ZCARD', KEYS[1]) end
if ARGV[1] ~= '1' or t == 'set' then return n end
local start, count = math.max(tonumber(ARGV[2]), 0), tonumber(ARGV[3])
local stop = n - 1
if count >= 0 then stop = start + count - 1 end
if start >= n then start, stop = n - 1, n - 2 end
if stop >= n then stop = n - 1 end
return stop - start + 1`

var argSortSizeScript = []byte(sortSizeScript)
