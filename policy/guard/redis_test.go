package guard

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// clientTimeout is the tests' client read/write timeout: far above any
// command they send (the fixtures are built by Server.Fill in small
// commands), so a busy CI machine slows a test down instead of failing it.
const clientTimeout = 30 * time.Second

// client connects to srv speaking RESP proto and selecting db.
func client(t testing.TB, srv *redistest.Server, proto, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: proto, DB: db, DisableIdentity: true,
		ReadTimeout: clientTimeout, WriteTimeout: clientTimeout})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// do runs args on c.
func do(ctx context.Context, c *redis.Client, args [][]byte) (any, error) {
	a := make([]any, len(args))
	for i, b := range args {
		a[i] = string(b)
	}
	return c.Do(ctx, a...).Result()
}

// commandStat is one line of INFO commandstats.
type commandStat struct{ calls, usec int }

// commandStats returns INFO commandstats by command name.
func commandStats(t testing.TB, ctx context.Context, c *redis.Client) map[string]commandStat {
	t.Helper()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]commandStat{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		var st commandStat
		for _, field := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			n, _ := strconv.Atoi(v)
			switch k {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		stats[name] = st
	}
	return stats
}

func TestUnlinkScriptOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := client(t, srv, 2, 0)
	const big = 1_000_000
	for _, typ := range []string{"list", "hash", "set", "zset"} {
		srv.Fill(0, typ, "big:"+typ, big)
		srv.Fill(0, typ, "small:"+typ, 10)
		srv.Fill(0, typ, "mid:"+typ, 127) // just under min_elements 128
	}
	srv.Fill(0, "stream", "big:stream", 200)
	srv.Fill(0, "stream", "small:stream", 3)
	c.Set(ctx, "big:string", strings.Repeat("x", 2<<20), 0)
	c.Set(ctx, "small:string", "v", 0)
	c.Set(ctx, "mid:string", strings.Repeat("x", 100), 0) // raw encoding, under 1 MiB

	g := newGuard(t, Config{})
	keys := "big:list small:list mid:list nosuch big:hash small:hash mid:hash big:set small:set mid:set " +
		"big:zset small:zset mid:zset big:stream small:stream big:string small:string mid:string big:list nosuch2"
	p := g.Plan(cmd("DEL "+keys), nil)
	if p.Action != Rewrite || p.Reason != ReasonUnlink {
		t.Fatalf("Plan = %+v", p)
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := do(ctx, c, p.Args)
	if err != nil || got != int64(17) { // 20 keys: two missing, big:list twice
		t.Fatalf("EVAL = %v, %v; want 17 as DEL", got, err)
	}
	stats := commandStats(t, ctx, c)
	// Big: list, hash, set, zset (1M), stream (200 >= 128), string (2 MiB).
	if stats["unlink"].calls != 6 || stats["del"].calls != 11 {
		t.Fatalf("commandstats unlink=%d del=%d, want 6 and 11 (%v)", stats["unlink"].calls, stats["del"].calls, stats)
	}
	// A plain DEL of the 1M-field hash alone blocks for ~475 ms here; the
	// whole script must stay far below (UNLINK frees in the background).
	t.Logf("EVAL of the DEL script over 1M-element list/hash/set/zset: %d µs in Redis", stats["eval"].usec)
	if stats["eval"].usec > 100_000 {
		t.Errorf("EVAL took %d µs in Redis", stats["eval"].usec)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("DBSIZE = %d after DEL of everything", n)
	}
}

func TestUnlinkScriptRepliesEqualDel(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	g := newGuard(t, Config{Unlink: UnlinkConfig{MinElements: 50, MinBytes: 64}})
	populate := func(c *redis.Client, db int) {
		srv.Fill(db, "list", "l", 100)
		srv.Fill(db, "hash", "h", 10)
		srv.Fill(db, "set", "s", 60)
		srv.Fill(db, "zset", "z", 5)
		c.Set(ctx, "str", strings.Repeat("y", 100), 0)
		c.Set(ctx, "n", 42, 0)
		c.Set(ctx, "gone", 1, time.Millisecond) // expired by the DEL: counts as missing
	}
	for _, proto := range []int{2, 3} {
		direct, guarded := client(t, srv, proto, 1), client(t, srv, proto, 2)
		for _, keys := range []string{
			"nosuch", "l", "l l", "nosuch l h s z str n gone", "h s", "z z z", "str n nosuch", "gone",
		} {
			direct.FlushDB(ctx)
			guarded.FlushDB(ctx)
			populate(direct, 1)
			populate(guarded, 2)
			time.Sleep(3 * time.Millisecond) // let "gone" expire on both
			want, err1 := do(ctx, direct, cmd("DEL "+keys))
			p := g.Plan(cmd("DEL "+keys), nil)
			got, err2 := do(ctx, guarded, p.Args)
			if err1 != nil || err2 != nil || got != want {
				t.Errorf("RESP%d DEL %s: DEL = %v, %v; script = %v, %v", proto, keys, want, err1, got, err2)
			}
			left1, _ := direct.Keys(ctx, "*").Result()
			left2, _ := guarded.Keys(ctx, "*").Result()
			if fmt.Sprint(len(left1)) != fmt.Sprint(len(left2)) {
				t.Errorf("RESP%d DEL %s left %v vs %v", proto, keys, left1, left2)
			}
		}
	}
}

// TestProbesOnRedis checks each family's probes against the truth: the
// element count of the command's actual reply. With max_elements equal to
// that count the read passes; one less and it is refused. For set algebra
// and KEYS with a pattern the guard's number is a bound, so only the
// refusal side must hold.
func TestProbesOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c2 := client(t, srv, 2, 0)
	c3 := client(t, srv, 3, 0)
	srv.Fill(0, "hash", "h", 150)
	srv.Fill(0, "set", "s1", 150)
	c2.SAdd(ctx, "s2", 140, 141, 142, "x", "y")
	srv.Fill(0, "list", "l", 150)
	srv.Fill(0, "zset", "z", 150)
	for i := range 150 {
		c2.ZAdd(ctx, "zl", redis.Z{Score: 0, Member: fmt.Sprintf("a%03d", i)})
	}
	srv.Fill(0, "stream", "x", 150)

	tests := []struct {
		cmd     string
		perItem int  // reply entries per element (RESP2 HGETALL, WITHSCORES)
		bound   bool // the guard's number is an upper bound
	}{
		{"HGETALL h", 2, false}, {"HKEYS h", 1, false}, {"HVALS h", 1, false}, {"SMEMBERS s1", 1, false},
		{"SUNION s1 s2", 1, true}, {"SINTER s1 s2", 1, true}, {"SDIFF s1 s2", 1, true},
		{"SUNIONSTORE dst s1 s2", 1, true},
		{"LRANGE l 0 -1", 1, false}, {"LRANGE l 10 -20", 1, false}, {"LRANGE l -120 100", 1, false},
		{"LRANGE l 140 1000", 1, false}, {"LRANGE l -1000 -3", 1, false},
		{"ZRANGE z 0 -1 WITHSCORES", 2, false}, {"ZREVRANGE z 5 -5", 1, false},
		{"ZRANGE z (10 100 BYSCORE", 1, false}, {"ZRANGE z 100 (10 BYSCORE REV LIMIT 5 80", 1, false},
		{"ZRANGE zl [a010 (a100 BYLEX", 1, false}, {"ZRANGE zl (a100 [a010 BYLEX REV", 1, false},
		{"ZRANGEBYSCORE z -inf 50", 1, false}, {"ZREVRANGEBYSCORE z +inf 30 LIMIT 2 -1", 1, false},
		{"ZRANGEBYLEX zl - + LIMIT 3 200", 1, false}, {"ZREVRANGEBYLEX zl + [a020", 1, false},
		{"ZRANGESTORE dst z 3 -1", 1, false},
		{"SORT l", 1, false}, {"SORT s1 LIMIT 0 100000", 1, true}, {"SORT_RO z ALPHA", 1, false},
		{"XRANGE x - +", 1, false}, {"XREVRANGE x + - COUNT 120", 1, false},
		{"KEYS *", 1, false}, {"KEYS z*", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			args := cmd(tt.cmd)
			reply, err := do(ctx, c2, args)
			if err != nil {
				t.Fatal(err)
			}
			truth := int64(0)
			switch r := reply.(type) {
			case []any:
				truth = int64(len(r) / tt.perItem)
			case int64:
				truth = r
			default:
				t.Fatalf("reply %T", reply)
			}
			if truth < 2 {
				t.Fatalf("truth %d is too small to test", truth)
			}
			for _, max := range []int64{truth, truth - 1} {
				g := newGuard(t, Config{MaxElements: max, SizeCacheTTL: -1})
				p := g.Plan(args, nil)
				if p.Action == Probe {
					var sizes, sizes3 []int64
					for _, probe := range p.Probes {
						n2, err2 := do(ctx, c2, probe)
						n3, err3 := do(ctx, c3, probe)
						if err2 != nil || err3 != nil || n2 != n3 {
							t.Fatalf("probe %s: RESP2 %v %v, RESP3 %v %v", join(probe), n2, err2, n3, err3)
						}
						sizes, sizes3 = append(sizes, n2.(int64)), append(sizes3, n3.(int64))
					}
					p = g.Decide(args, sizes)
				}
				rejected := p.Action == Reject
				switch {
				case max == truth && rejected && !tt.bound:
					t.Errorf("max %d = truth: refused: %s", max, p.Err)
				case max < truth && !rejected:
					t.Errorf("max %d < truth %d: %v", max, truth, p.Action)
				}
			}
		})
	}
}
