package proxy

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
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

// bigHashProxy is a proxy with max_elements 1000 in front of a Redis holding
// the 5000-field hash user:42; mutate may adjust the configs.
func bigHashProxy(t *testing.T, rs *redistest.Server, mutate func(*Config, *pool.Config)) *testProxy {
	t.Helper()
	tp := startProxyWith(t, rs, mutate, Options{Guard: newGuard(t, guard.Config{MaxElements: 1000, SizeCacheTTL: -1})})
	tp.Redis.Fill(0, "hash", "user:42", 5000)
	return tp
}

// A guarded read pipelined behind a command that keeps Redis busy longer
// than any fixed wait is judged once Redis answers its probe, as it would
// have answered the read itself: a slow Redis is no reason to let it through.
func TestReadBehindSlowCommandIsStillGuarded(t *testing.T) {
	tp := bigHashProxy(t, redistest.Start(t), nil)
	c := tp.raw(t)
	script := `local t=redis.call('time') local s=t[1]*1000000+t[2] while true do local n=redis.call('time') if n[1]*1000000+n[2]-s > 5500000 then break end end return 1`
	c.send(fmt.Sprintf("*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n*2\r\n$7\r\nHGETALL\r\n$7\r\nuser:42\r\n", len(script), script))
	if got := c.line(); got != ":1" {
		t.Fatalf("EVAL = %q", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "-ERR respguard: HGETALL on 'user:42' would return 5000 fields") {
		t.Fatalf("HGETALL of 5000 fields (limit 1000) behind a 5.5 s script = %q..., want the guard's refusal", got)
	}
}

// A probe that cannot tell the size refuses the read, saying why, unless
// its error proves that Redis refuses the read too.
func TestProbeThatCannotTellTheSizeRefusesTheRead(t *testing.T) {
	t.Run("the upstream user may not run the probe", func(t *testing.T) {
		rs := redistest.Start(t)
		admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
		defer admin.Close()
		if err := admin.Do(ctxT(t), "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-hlen").Err(); err != nil {
			t.Fatal(err)
		}
		tp := bigHashProxy(t, rs, func(_ *Config, p *pool.Config) { p.Username, p.Password = "app", "pw" })
		c := tp.raw(t)
		c.send("HGETALL user:42\r\n")
		got := c.line()
		if !strings.HasPrefix(got, "-ERR respguard: HGETALL on 'user:42' refused: could not check the size (NOPERM") {
			t.Fatalf("HGETALL whose HLEN probe is refused = %.120q..., want the guard's refusal", got)
		}
	})
	t.Run("the probe's connection times out", func(t *testing.T) {
		rs := redistest.Start(t)
		tp := bigHashProxy(t, rs, func(_ *Config, p *pool.Config) {
			p.SharedConns, p.CommandTimeout, p.RetryBackoff = 1, 200*time.Millisecond, 5*time.Second
		})
		c := tp.raw(t)
		c.send("PING\r\n")
		c.line()
		if err := syscall.Kill(rs.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = syscall.Kill(rs.Pid(), syscall.SIGCONT) }()
		c.send("HGETALL user:42\r\n")
		got := c.line()
		if !strings.HasPrefix(got, "-ERR respguard: HGETALL on 'user:42' refused: could not check the size (upstream unavailable: ") ||
			!strings.Contains(got, "timed out") {
			t.Fatalf("HGETALL whose probe timed out = %.160q..., want the guard's refusal", got)
		}
	})
	t.Run("WRONGTYPE from the probe is Redis's answer to the read too", func(t *testing.T) {
		tp := bigHashProxy(t, redistest.Start(t), nil)
		ctx := ctxT(t)
		direct := tp.direct(t)
		direct.Set(ctx, "str", "v", 0)
		direct.SAdd(ctx, "set", "a")
		c := tp.client(t, 2)
		for _, line := range []string{"HGETALL str", "SUNION set str", "SINTER missing str", "SINTER set str", "ZRANGEBYSCORE str x y", "ZRANGE str (a [b BYLEX"} {
			want := fmt.Sprint(direct.Do(ctx, words(line)...).Result())
			if got := fmt.Sprint(c.Do(ctx, words(line)...).Result()); got != want {
				t.Errorf("%s: respguard %s, Redis %s", line, got, want)
			}
		}
	})
}

// sunionOfEmptyKeys is SUNION nk0 ... nk<n-1>, encoded.
func sunionOfEmptyKeys(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n$6\r\nSUNION\r\n", n+1)
	for i := range n {
		k := fmt.Sprintf("nk%d", i)
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(k), k)
	}
	return b.String()
}

// One client's read over very many keys is probed a batch at a time: the
// other clients on the same shared connection keep being served meanwhile.
func TestManyKeyReadDoesNotStallOtherClients(t *testing.T) {
	const n = 150_000
	g := newGuard(t, guard.Config{MaxElements: 1_000_000, SizeCacheTTL: -1}) // every key is probed
	tp := startProxyWith(t, redistest.Start(t), func(_ *Config, p *pool.Config) { p.SharedConns = 1 }, Options{Guard: g})
	hog, other := tp.raw(t), tp.raw(t)
	other.send("PING\r\n")
	other.line()
	answered := make(chan string, 1)
	go func() {
		line, err := hog.r.ReadString('\n')
		if err != nil {
			line = err.Error()
		}
		answered <- line
	}()
	hog.send(sunionOfEmptyKeys(n))
	var worst time.Duration
	pings := 0
	for done := false; !done; {
		at := time.Now()
		other.send("PING\r\n")
		if got := other.line(); got != "+PONG" {
			t.Fatalf("PING = %q", got)
		}
		worst, pings = max(worst, time.Since(at)), pings+1
		select {
		case line := <-answered:
			if line != "*0\r\n" {
				t.Fatalf("SUNION of %d empty keys = %q, want an empty array", n, line)
			}
			done = true
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Logf("one client's SUNION of %d empty keys: another client's %d PINGs waited up to %v", n, pings, worst)
	if worst > time.Second {
		t.Fatalf("another client's PING waited %v behind one client's SUNION (direct Redis: milliseconds)", worst)
	}
}

// A read over more keys than max_elements is refused without a probe:
// Redis would look every key up, whatever their sizes.
func TestReadOverMoreKeysThanTheLimitIsRefusedWithoutProbes(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Guard: newGuard(t, guard.Config{})})
	scards := cmdstat(t, tp, "scard")
	c := tp.raw(t)
	c.send(sunionOfEmptyKeys(10_001))
	if got := c.line(); !strings.HasPrefix(got, "-ERR respguard: SUNION on 10001 keys from 'nk0' would look up 10001 keys (limit 10000)") {
		t.Fatalf("SUNION of 10001 keys = %q", got)
	}
	c.send(sunionOfEmptyKeys(10_000))
	if got := c.line(); got != "*0" {
		t.Fatalf("SUNION of 10000 empty keys = %q, want an empty array", got)
	}
	if got := cmdstat(t, tp, "scard") - scards; got != 10_000 {
		t.Fatalf("Redis ran SCARD %d times, want 10000 (the second SUNION's keys only)", got)
	}
}

// Once the sizes probed so far add up to more than max_elements, the read
// is refused without probing the remaining keys.
func TestSumOverTheLimitStopsProbing(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Guard: newGuard(t, guard.Config{MaxElements: 5000, SizeCacheTTL: -1})})
	tp.Redis.Fill(0, "set", "nk0", 6000)
	scards := cmdstat(t, tp, "scard")
	c := tp.raw(t)
	c.send(sunionOfEmptyKeys(4000))
	if got := c.line(); !strings.HasPrefix(got, "-ERR respguard: SUNION on 4000 keys from 'nk0' would touch at least 6000 members (limit 5000)") {
		t.Fatalf("SUNION = %q", got)
	}
	if got := cmdstat(t, tp, "scard") - scards; got >= 4000 {
		t.Fatalf("Redis ran SCARD %d times for a read refused by its first key", got)
	}
}

// A guarded read's probe waits behind the client's blocking command on its
// dedicated connection, as the read would in Redis; a client that closes
// its connection meanwhile is let go, with that connection.
func TestClientGoneWhileProbeWaitsBehindItsBlockingCommand(t *testing.T) {
	tp := bigHashProxy(t, redistest.Start(t), nil)
	c := tp.raw(t)
	c.send("BLPOP q 0\r\nHGETALL user:42\r\n")
	waitRedisBlocked(t, tp)
	pollUntil(t, 10*time.Second, "the probe queued behind BLPOP", func() bool {
		return goroutineRuns("guardPlan")
	})
	_ = c.Close()
	direct, ctx := tp.direct(t), ctxT(t)
	pollUntil(t, 10*time.Second, "the blocked upstream connection closed", func() bool {
		return strings.Contains(direct.Info(ctx, "clients").Val(), "blocked_clients:0")
	})
}
