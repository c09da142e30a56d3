package proxy

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool/redistest"
)

func newGuard(t *testing.T, cfg guard.Config) *guard.Guard {
	t.Helper()
	g, err := guard.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDelOfBigKeysBecomesUnlink(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Guard: newGuard(t, guard.Config{})})
	ctx := ctxT(t)
	for _, kind := range []string{"list", "hash", "set", "zset"} {
		tp.Redis.Fill(0, kind, "big:"+kind, 10_000) // far above the 128-element threshold, and out of listpack encoding
	}
	tp.direct(t).Set(ctx, "small", "v", 0)
	// The rewritten DEL frees nothing in the foreground, but a busy machine
	// must slow it down, not fail it: no 3 s default read timeout.
	c := tp.client(t, 3, func(o *redis.Options) { o.ReadTimeout = 30 * time.Second })
	unlinks, dels := cmdstat(t, tp, "unlink"), cmdstat(t, tp, "del")
	n, err := c.Del(ctx, "big:list", "big:hash", "small", "missing", "big:set", "big:zset").Result()
	if err != nil || n != 5 {
		t.Fatalf("DEL = %d, %v; want 5 as plain DEL would say", n, err)
	}
	if got := cmdstat(t, tp, "unlink") - unlinks; got != 4 {
		t.Fatalf("Redis ran UNLINK %d times, want 4 (one per big key)", got)
	}
	if got := cmdstat(t, tp, "del") - dels; got != 1 {
		t.Fatalf("Redis ran DEL %d times, want 1 (the small key)", got)
	}
	if left := tp.direct(t).Exists(ctx, "big:list", "big:hash", "small", "big:set", "big:zset").Val(); left != 0 {
		t.Fatalf("%d keys left", left)
	}
}

func TestOversizeReadsAreRefused(t *testing.T) {
	g := newGuard(t, guard.Config{MaxElements: 1000})
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Guard: g})
	ctx := ctxT(t)
	tp.Redis.Fill(0, "hash", "user:42", 1001)
	tp.Redis.Fill(0, "hash", "user:7", 1000)
	tp.Redis.Fill(0, "list", "feed", 5000)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			c := tp.client(t, proto)
			err := c.HGetAll(ctx, "user:42").Err()
			if err == nil || !strings.Contains(err.Error(), "HGETALL on 'user:42'") || !strings.Contains(err.Error(), "HSCAN") {
				t.Fatalf("HGETALL over the limit: err = %v", err)
			}
			if m, err := c.HGetAll(ctx, "user:7").Result(); err != nil || len(m) != 1000 {
				t.Fatalf("HGETALL at the limit: %d fields, %v", len(m), err)
			}
			if err := c.LRange(ctx, "feed", 0, -1).Err(); err == nil {
				t.Fatal("LRANGE 0 -1 of 5000 elements was allowed")
			}
			if v, err := c.LRange(ctx, "feed", 0, 99).Result(); err != nil || len(v) != 100 {
				t.Fatalf("bounded LRANGE: %d, %v", len(v), err)
			}
		})
	}
	t.Run("the admin endpoint lists the biggest keys seen, refused ones included", func(t *testing.T) {
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/bigkeys", nil))
		var big struct {
			ByElements []guard.KeyStat `json:"by_elements"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &big); err != nil {
			t.Fatalf("%v: %s", err, rec.Body.String())
		}
		var got []string
		for _, k := range big.ByElements {
			got = append(got, fmt.Sprint(k.Key, "=", k.Elements))
		}
		if want := "[feed=5000 user:42=1001 user:7=1000]"; fmt.Sprint(got) != want {
			t.Fatalf("bigkeys by elements = %v, want %s (the refused feed and user:42 too)", got, want)
		}
	})
}

// TestRepeatedOptionsAreJudgedAsRedisReadsThem sends reads whose options
// repeat or conflict through respguard and directly to Redis: whatever
// Redis would return or load beyond max_elements is refused, and what
// passes gets exactly Redis's reply.
func TestRepeatedOptionsAreJudgedAsRedisReadsThem(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Guard: newGuard(t, guard.Config{MaxElements: 100})})
	ctx := ctxT(t)
	tp.Redis.Fill(0, "zset", "big", 1000)
	tp.Redis.Fill(0, "set", "bigset", 1000)
	tp.Redis.Fill(0, "list", "biglist", 1000)
	if err := tp.direct(t).Eval(ctx, "for i=1,1000 do redis.call('XADD', KEYS[1], '*', 'f', i) end", []string{"s"}).Err(); err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	refused := []string{
		"ZRANGEBYSCORE big -inf +inf LIMIT 0 10 LIMIT 0 -1",
		"ZRANGE big -inf +inf BYSCORE LIMIT 0 10 LIMIT 0 -1",
		"ZRANGE big 0 -1 LIMIT 0 -1",
		"ZREVRANGE big 0 -1 LIMIT 5 -1",
		"ZRANGEBYLEX big - + LIMIT 0 10 LIMIT 0 -1",
		"XRANGE s - + COUNT 10 COUNT 100000",
		"SORT bigset BY nosort LIMIT 0 10 STORE dst",
		"SORT bigset BY nosort LIMIT 0 10",
		"SORT biglist BY nosort LIMIT 0 10 LIMIT 0 -1",
	}
	passed := []string{
		"ZRANGEBYSCORE big -inf +inf LIMIT 0 -1 LIMIT 0 10",
		"XRANGE s - + COUNT 100000 COUNT 10",
		"SORT biglist BY nosort LIMIT 0 10 STORE dst",
		"SORT biglist BY nosort BY w_* LIMIT 0 10",
		"ZRANGE big 0 -1 LIMIT 0 10", // Redis's syntax error
	}
	c, direct := tp.client(t, 2), tp.direct(t)
	for _, line := range refused {
		err := c.Do(ctx, words(line)...).Err()
		if err == nil || !strings.Contains(err.Error(), "respguard") {
			t.Errorf("%s: err = %v, want the guard's refusal", line, err)
		}
	}
	for _, line := range passed {
		want := fmt.Sprint(direct.Do(ctx, words(line)...).Result())
		if got := fmt.Sprint(c.Do(ctx, words(line)...).Result()); got != want {
			t.Errorf("%s: respguard %s, Redis %s", line, got, want)
		}
	}
}

// words turns a command line into go-redis arguments.
func words(line string) []any {
	var args []any
	for _, w := range strings.Fields(line) {
		args = append(args, w)
	}
	return args
}
