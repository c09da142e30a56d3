package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/telemetry"
)

// respguardUsers: an operator (default, +@all), application users who must
// not run RESPGUARD, and one granted a single subcommand. The production
// preset applies to every one of them.
var respguardUsers = map[string]string{
	"default":  "on nopass ~* &* +@all",
	"app":      "on >app-pw ~* &* +@all -@admin",
	"reader":   "on >reader-pw ~* +@read +@write +@connection",
	"watchdog": "on >watchdog-pw +respguard|clients +respguard|help",
}

// respguardProxy is a proxy with telemetry (every command slow), a guard and
// Admin hooks; reloads counts RESPGUARD RELOADs and fails the second one.
func respguardProxy(t *testing.T) (*testProxy, *atomic.Int32) {
	t.Helper()
	tel, err := telemetry.New(context.Background(), telemetry.Config{
		Slowlog: telemetry.SlowlogConfig{Threshold: 1, MaxLen: 100},
	}, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	pol, err := policy.New(policy.Config{Users: respguardUsers, DefaultRules: policy.PresetProduction}, policy.BuiltinCommands())
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxyWith(t, redistest.Start(t), func(_ *Config, pc *pool.Config) { pc.MaxConns = 7 },
		Options{Telemetry: tel, Policy: pol, Guard: newGuard(t, guard.Config{})})
	reloads := &atomic.Int32{}
	tp.Server.SetAdmin(Admin{
		Config: func() []Setting {
			return []Setting{{"listen", "127.0.0.1:6380"}, {"pool.max_conns", "7"}, {"policy.users.app", "on >******** +@all"}}
		},
		Reload: func(context.Context) error {
			if reloads.Add(1) == 2 {
				return errors.New("policy.users.x: bad rule\r\nsecond line")
			}
			return nil
		},
		UpstreamMode: "standalone",
	})
	return tp, reloads
}

// record turns a RESPGUARD entry into a map, from a RESP3 map or a RESP2
// flat array.
func record(t *testing.T, v any) map[string]any {
	t.Helper()
	out := map[string]any{}
	switch v := v.(type) {
	case map[any]any:
		for k, x := range v {
			out[fmt.Sprint(k)] = x
		}
	case []any:
		if len(v)%2 != 0 {
			t.Fatalf("odd flat array %v", v)
		}
		for i := 0; i < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = v[i+1]
		}
	default:
		t.Fatalf("want a map or a flat array, got %T %v", v, v)
	}
	return out
}

func records(t *testing.T, v any) []map[string]any {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("want an array, got %T %v", v, v)
	}
	var out []map[string]any
	for _, e := range list {
		out = append(out, record(t, e))
	}
	return out
}

func TestRespguardSubcommandsAnswerInBothProtocols(t *testing.T) {
	tp, reloads := respguardProxy(t)
	ctx := ctxT(t)
	version := tp.direct(t).Info(ctx, "server").Val()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			c := tp.client(t, proto)
			other := tp.client(t, proto)
			if err := other.Do(ctx, "CLIENT", "SETNAME", "worker-7").Err(); err != nil {
				t.Fatal(err)
			}
			c.Set(ctx, "hot", "v", 0)
			for range 5 {
				c.Get(ctx, "hot")
			}
			c.RPush(ctx, "biglist", "a", "b", "c")
			c.LRange(ctx, "biglist", 0, -1)
			do := func(args ...any) any {
				t.Helper()
				v, err := c.Do(ctx, append([]any{"RESPGUARD"}, args...)...).Result()
				if err != nil {
					t.Fatalf("RESPGUARD %v: %v", args, err)
				}
				return v
			}

			t.Run("HELP lists the subcommands", func(t *testing.T) {
				help := fmt.Sprint(do("HELP"))
				for _, sub := range []string{"CLIENTS", "POOLS", "UPSTREAMS", "CONFIG [<pattern>]", "SLOWLOG [<count>]", "BIGKEYS", "HOTKEYS", "RELOAD", "HELP"} {
					if !strings.Contains(help, sub) {
						t.Errorf("HELP lacks %s: %s", sub, help)
					}
				}
			})
			t.Run("CLIENTS lists respguard's clients", func(t *testing.T) {
				id := c.Do(ctx, "CLIENT", "ID").Val()
				var self, named map[string]any
				for _, r := range records(t, do("clients")) {
					if r["id"] == id {
						self = r
					}
					if r["name"] == "worker-7" {
						named = r
					}
				}
				if self == nil || self["cmd"] != "respguard|clients" || self["user"] != "default" || self["resp"] != int64(proto) || self["flags"] != "N" {
					t.Errorf("own entry %v (id %v)", self, id)
				}
				if _, ok := self["pending"]; !ok || self["dedicated"] != int64(0) {
					t.Errorf("own entry lacks pending/dedicated: %v", self)
				}
				if named == nil || named["cmd"] != "client|setname" {
					t.Errorf("the other client: %v", named)
				}
			})
			t.Run("POOLS has the pool's figures", func(t *testing.T) {
				pools := records(t, do("POOLS"))
				if len(pools) != 1 || pools[0]["address"] != tp.Redis.Addr || pools[0]["dedicated_max"] != int64(7) {
					t.Fatalf("POOLS = %v", pools)
				}
				if pools[0]["shared"].(int64) < 1 {
					t.Errorf("no shared connection counted after GETs: %v", pools[0])
				}
			})
			t.Run("UPSTREAMS names the server", func(t *testing.T) {
				ups := records(t, do("UPSTREAMS"))
				if len(ups) != 1 || ups[0]["address"] != tp.Redis.Addr || ups[0]["mode"] != "standalone" || ups[0]["role"] != "master" ||
					!strings.Contains(version, "redis_version:"+fmt.Sprint(ups[0]["version"])) || ups[0]["databases"] != int64(16) {
					t.Fatalf("UPSTREAMS = %v", ups)
				}
			})
			t.Run("CONFIG shows the settings, by pattern", func(t *testing.T) {
				all := record(t, do("CONFIG"))
				if len(all) != 3 || all["pool.max_conns"] != "7" {
					t.Errorf("CONFIG = %v", all)
				}
				some := record(t, do("CONFIG", "policy.*"))
				if len(some) != 1 || some["policy.users.app"] != "on >******** +@all" {
					t.Errorf("CONFIG policy.* = %v", some)
				}
			})
			t.Run("SLOWLOG has the slow log, newest first", func(t *testing.T) {
				entries := records(t, do("SLOWLOG", "-1"))
				if len(entries) < 10 {
					t.Fatalf("%d entries", len(entries))
				}
				if len(records(t, do("SLOWLOG"))) != 10 || len(records(t, do("SLOWLOG", "2"))) != 2 {
					t.Error("SLOWLOG's count is not applied")
				}
				var sawGet bool
				for i, e := range entries {
					if i > 0 && e["id"].(int64) >= entries[i-1]["id"].(int64) {
						t.Fatalf("not newest first: %v", entries)
					}
					sawGet = sawGet || e["command"] == "get" && e["statement"] == "GET hot" && e["user"] == "default" && e["duration_ns"].(int64) > 0
				}
				if !sawGet {
					t.Errorf("no GET hot entry in %v", entries)
				}
			})
			t.Run("BIGKEYS and HOTKEYS have the guard's tables", func(t *testing.T) {
				big := record(t, do("BIGKEYS"))
				byElements := records(t, big["by_elements"])
				if len(byElements) == 0 || byElements[0]["key"] != "biglist" || byElements[0]["elements"] != int64(3) {
					t.Errorf("BIGKEYS = %v", big)
				}
				if len(records(t, big["by_bytes"])) == 0 {
					t.Errorf("BIGKEYS by_bytes empty: %v", big)
				}
				hot := records(t, do("HOTKEYS"))
				if len(hot) == 0 || hot[0]["key"] != "hot" {
					t.Fatalf("HOTKEYS = %v", hot)
				}
				rate := hot[0]["rate"]
				if proto == 3 {
					if r, ok := rate.(float64); !ok || r <= 0 {
						t.Errorf("RESP3 rate %T %v, want a positive double", rate, rate)
					}
				} else if s, ok := rate.(string); !ok || s == "" || s == "0" {
					t.Errorf("RESP2 rate %T %v, want a bulk string", rate, rate)
				}
			})
		})
	}
	t.Run("RELOAD runs the reload and says why it was refused", func(t *testing.T) {
		c := tp.client(t, 2)
		if v, err := c.Do(ctx, "RESPGUARD", "RELOAD").Result(); err != nil || v != "OK" {
			t.Fatalf("RELOAD = %v, %v", v, err)
		}
		err := c.Do(ctx, "RESPGUARD", "RELOAD").Err()
		if err == nil || err.Error() != "ERR respguard: config reload failed; the running configuration stays in force: policy.users.x: bad rule  second line" {
			t.Fatalf("refused RELOAD = %v", err)
		}
		if reloads.Load() != 2 {
			t.Fatalf("%d reloads", reloads.Load())
		}
	})
}

func TestRespguardErrorsAreRedisStyle(t *testing.T) {
	tp, _ := respguardProxy(t)
	rc := tp.raw(t)
	for _, tc := range []struct{ send, want string }{
		{"RESPGUARD\r\n", "-ERR wrong number of arguments for 'respguard' command"},
		{"RESPGUARD nope\r\n", "-ERR unknown subcommand 'nope'. Try RESPGUARD HELP."},
		{"RESPGUARD clients extra\r\n", "-ERR wrong number of arguments for 'respguard|clients' command"},
		{"RESPGUARD config a b\r\n", "-ERR wrong number of arguments for 'respguard|config' command"},
		{"RESPGUARD slowlog x\r\n", "-ERR count should be greater than or equal to -1"},
		{"RESPGUARD HELP\r\n", "*21"},
	} {
		rc.send(tc.send)
		if got := rc.line(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
	if got := rc.line(); got != "+RESPGUARD <subcommand> [<arg> [value] [opt] ...]. Subcommands are:" {
		t.Errorf("HELP's first line %q", got)
	}
}

func TestRespguardNeedsItsGrant(t *testing.T) {
	tp, reloads := respguardProxy(t)
	ctx := ctxT(t)
	as := func(user, pw string) *redis.Client {
		return tp.client(t, 3, func(o *redis.Options) { o.Username, o.Password = user, pw })
	}
	for _, tc := range []struct {
		user, pw, sub string
		allowed       bool
	}{
		{"default", "", "reload", true}, // +@all, production preset included
		{"app", "app-pw", "clients", false},
		{"app", "app-pw", "reload", false},
		{"app", "app-pw", "help", true}, // HELP is not @admin, as CLIENT HELP
		{"reader", "reader-pw", "config", false},
		{"reader", "reader-pw", "slowlog", false},
		{"watchdog", "watchdog-pw", "clients", true},
		{"watchdog", "watchdog-pw", "reload", false},
	} {
		err := as(tc.user, tc.pw).Do(ctx, "RESPGUARD", tc.sub).Err()
		want := "NOPERM this user has no permissions to run the 'respguard|" + tc.sub + "' command"
		if tc.allowed && err != nil || !tc.allowed && (err == nil || err.Error() != want) {
			t.Errorf("%s RESPGUARD %s: %v (allowed: %v)", tc.user, tc.sub, err, tc.allowed)
		}
	}
	if reloads.Load() != 1 {
		t.Errorf("%d reloads ran, want the operator's one", reloads.Load())
	}
}

func TestRespguardInsideMultiRunsAtExec(t *testing.T) {
	tp, reloads := respguardProxy(t)
	ctx := ctxT(t)
	c := tp.client(t, 3)
	var pools, help *redis.Cmd
	var set *redis.StatusCmd
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		set = p.Set(ctx, "k", "v", 0)
		pools = p.Do(ctx, "RESPGUARD", "POOLS")
		p.Do(ctx, "RESPGUARD", "RELOAD")
		help = p.Do(ctx, "RESPGUARD", "HELP")
		return nil
	})
	if err != nil || set.Val() != "OK" || len(records(t, pools.Val())) != 1 || !strings.Contains(fmt.Sprint(help.Val()), "UPSTREAMS") {
		t.Fatalf("EXEC: %v; SET %v, POOLS %v, HELP %v", err, set.Val(), pools.Val(), help.Val())
	}
	if reloads.Load() != 1 {
		t.Fatalf("the queued RELOAD ran %d times", reloads.Load())
	}

	rc := tp.raw(t)
	rc.send("MULTI\r\nRESPGUARD RELOAD\r\nDISCARD\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "+OK"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if reloads.Load() != 1 {
		t.Fatal("a discarded RELOAD ran")
	}
	for send, refusal := range map[string]string{
		"RESPGUARD nope":        "-ERR unknown subcommand 'nope'. Try RESPGUARD HELP.",
		"RESPGUARD config a b":  "-ERR wrong number of arguments for 'respguard|config' command",
		"RESPGUARD slowlog 1 2": "-ERR wrong number of arguments for 'respguard|slowlog' command",
		"RESPGUARD pools x":     "-ERR wrong number of arguments for 'respguard|pools' command",
	} {
		rc.send("MULTI\r\nSET k v\r\n" + send + "\r\nEXEC\r\n")
		for _, want := range []string{"+OK", "+QUEUED", refusal, "-EXECABORT Transaction discarded because of previous errors."} {
			if got := rc.line(); got != want {
				t.Fatalf("%s: got %q, want %q", send, got, want)
			}
		}
	}
}

func TestRespguardInRESP2PubSubContextIsRefused(t *testing.T) {
	tp, _ := respguardProxy(t)
	rc := tp.raw(t)
	rc.send("SUBSCRIBE ch\r\n")
	for range 6 { // *3 $9 subscribe $2 ch :1
		rc.line()
	}
	rc.send("RESPGUARD POOLS\r\nPING\r\n")
	for _, want := range []string{
		"-ERR Can't execute 'respguard|pools': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
		"*2", "$4", "pong", "$0", ""} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestRespguardThroughRedisCli(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed")
	}
	tp, _ := respguardProxy(t)
	host, port, _ := net.SplitHostPort(tp.Addr)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port, "--no-raw"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"RESPGUARD", "HELP"}, []string{` 1) RESPGUARD <subcommand>`, `RELOAD`}},
		{[]string{"RESPGUARD", "CLIENTS"}, []string{`1)  1) "id"`, `"cmd"`, `"respguard|clients"`}},
		{[]string{"-3", "RESPGUARD", "CLIENTS"}, []string{`1)  1# "id" => (integer)`, `"cmd" => "respguard|clients"`}},
		{[]string{"-3", "RESPGUARD", "POOLS"}, []string{`1)  1# "address" => "` + tp.Redis.Addr + `"`, `"dedicated_max" => (integer) 7`}},
		{[]string{"-3", "RESPGUARD", "CONFIG", "pool.*"}, []string{`1# "pool.max_conns" => "7"`}},
		{[]string{"RESPGUARD", "RELOAD"}, []string{"OK"}},
	} {
		out := run(tc.args...)
		t.Logf("redis-cli %s:\n%s", strings.Join(tc.args, " "), out)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("redis-cli %v lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

func TestRespguardInClusterModeListsEveryPrimary(t *testing.T) {
	rc := redistest.StartCluster(t, 2, 0)
	tp := startClusterProxy(t, rc, nil, Options{})
	ctx := ctxT(t)
	c := tp.client(t, 3)
	var want []string
	for _, s := range rc.Primaries() {
		want = append(want, s.Addr)
	}
	for _, sub := range []string{"POOLS", "UPSTREAMS"} {
		v, err := c.Do(ctx, "RESPGUARD", sub).Result()
		if err != nil {
			t.Fatalf("RESPGUARD %s: %v", sub, err)
		}
		var got []string
		for _, r := range records(t, v) {
			got = append(got, fmt.Sprint(r["address"]))
			if sub == "UPSTREAMS" && (r["mode"] != "cluster" || r["role"] != "master") {
				t.Errorf("UPSTREAMS entry %v", r)
			}
		}
		if fmt.Sprint(sortedStrings(got)) != fmt.Sprint(sortedStrings(want)) {
			t.Errorf("RESPGUARD %s addresses %v, want %v", sub, got, want)
		}
	}
}

func sortedStrings(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}
