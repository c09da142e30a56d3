package guard

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// boundBases are the commands FuzzBoundMatchesRedis appends options to:
// every guarded read that takes options, over the collections of fillBound.
var boundBases = []string{
	"ZRANGE z 0 -1", "ZRANGE z -inf +inf", "ZRANGE z (10 140", "ZRANGE z 140 (10", "ZRANGE zl - +",
	"ZRANGE zl [a050 (a120", "ZRANGE zl (a120 [a050", "ZRANGESTORE dst z 0 -1", "ZRANGESTORE dst z -inf +inf",
	"ZREVRANGE z 0 -1", "ZREVRANGE z 10 -10", "ZRANGEBYSCORE z -inf +inf", "ZREVRANGEBYSCORE z +inf -inf",
	"ZRANGEBYLEX zl - +", "ZREVRANGEBYLEX zl + -", "XRANGE x - +", "XREVRANGE x + -",
	"SORT l", "SORT s", "SORT zn", "SORT_RO l", "SORT_RO zn", "SORT_RO s",
}

// boundOptions are the option words the fuzzer draws from, each a run of
// arguments.
var boundOptions = []string{
	"LIMIT 0 10", "LIMIT 0 -1", "LIMIT 5 200", "LIMIT -3 7", "LIMIT 0", "LIMIT", "LIMIT 2 -5",
	"COUNT 10", "COUNT 100000", "COUNT -2", "COUNT", "WITHSCORES", "BYSCORE", "BYLEX", "REV",
	"BY nosort", "BY w_*", "STORE dst", "GET #", "ASC", "DESC", "ALPHA", "0", "-1", "x", "+1", "-0",
}

// boundCommand decodes a fuzz input: the first byte picks a base command,
// each further byte an option.
func boundCommand(in []byte) [][]byte {
	if len(in) == 0 {
		return nil
	}
	line := boundBases[int(in[0])%len(boundBases)]
	for _, b := range in[1:] {
		line += " " + boundOptions[int(b)%len(boundOptions)]
	}
	return cmd(line)
}

// fillBound builds the collections the base commands read: 150 elements
// each, a sorted set with scores 1..150 (z), one with equal scores for lex
// ranges (zl), and list, set and sorted set of numbers for SORT.
func fillBound(t testing.TB, ctx context.Context, srv *redistest.Server, c *redis.Client) {
	t.Helper()
	srv.Fill(0, "zset", "z", 150)
	srv.Fill(0, "list", "l", 150)
	srv.Fill(0, "set", "s", 150)
	srv.Fill(0, "stream", "x", 150)
	err := c.Eval(ctx, `for i = 1, 150 do
  redis.call('ZADD', KEYS[1], 0, string.format('a%03d', i))
  redis.call('ZADD', KEYS[2], 151 - i, i)
end`, []string{"zl", "zn"}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
}

// FuzzBoundMatchesRedis runs guarded reads with random, repeated and
// conflicting options on a real Redis and compares the guard's element
// count (from the arguments, or from its probes run on the same Redis)
// with what Redis actually returns: never less, and exactly for every read
// but SORT (whose count is what Redis loads, not what it returns). A read
// the guard does not understand must be one Redis refuses.
func FuzzBoundMatchesRedis(f *testing.F) {
	srv := redistest.Start(f)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 3, DisableIdentity: true, PoolSize: 1})
	f.Cleanup(func() { _ = c.Close() })
	fillBound(f, ctx, srv, c)
	f.Fuzz(func(t *testing.T, in []byte) {
		args := boundCommand(in)
		if args == nil || len(args) > 12 {
			return
		}
		checkBound(t, ctx, c, args)
	})
}

func checkBound(t *testing.T, ctx context.Context, c *redis.Client, args [][]byte) {
	op := readOpNamed(string(bytes.ToLower(args[0])))
	q, ok := parseQuery(op, args)
	reply, err := do(ctx, c, args)
	var rerr redis.Error
	if err != nil && !errors.As(err, &rerr) {
		t.Fatalf("%s: %v", join(args), err)
	}
	if !ok {
		if err == nil {
			t.Fatalf("%s: the guard passes it unjudged, but Redis ran it: %v", join(args), reply)
		}
		return
	}
	if err != nil {
		return // Redis refused it: nothing was read
	}
	truth := replyElements(reply, args)
	if q.static >= 0 && truth > q.static {
		t.Fatalf("%s: static bound %d, Redis returned %d", join(args), q.static, truth)
	}
	var sum int64
	for _, probe := range q.probes(op, args) {
		n, err := do(ctx, c, probe)
		if err != nil {
			t.Fatalf("probe %s: %v", join(probe), err)
		}
		sum = satAdd(sum, n.(int64))
	}
	bound := q.count(sum)
	isSort := q.est == estSort
	if truth > bound || !isSort && truth != bound {
		t.Fatalf("%s: guard counts %d, Redis returned %d", join(args), bound, truth)
	}
}

func readOpNamed(lower string) *readOp {
	for _, op := range readOps {
		if op.lower == lower {
			return op
		}
	}
	panic("bug: no read op " + lower)
}

// replyElements counts the elements of a RESP3 reply (the integer of a
// STORE, or the array's length), divided by SORT's GET patterns: each
// element yields one entry per GET.
func replyElements(reply any, args [][]byte) int64 {
	gets := 0
	if strings.HasPrefix(strings.ToLower(string(args[0])), "sort") {
		for _, a := range args {
			if equalFold(a, "get") {
				gets++
			}
		}
	}
	n, ok := reply.(int64)
	if !ok {
		n = int64(len(reply.([]any)))
	}
	return n / int64(max(gets, 1))
}
