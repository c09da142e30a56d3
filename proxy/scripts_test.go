package proxy

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// scriptCase is a proxy user and its rules.
type scriptCase struct {
	name, rules string
}

// scriptCorpus runs allowed and forbidden keys, channels and commands from
// scripts and functions (loaded by scriptLibrary).
var scriptCorpus = [][]any{
	{"EVAL", "return redis.call('get', KEYS[1])", 1, "cache:1"},
	{"EVAL", "return redis.call('get', 'secret')", 0},
	{"EVAL", "return redis.pcall('get', 'secret')", 0},
	{"EVAL", "return redis.call('set', 'secret', 'stolen')", 0},
	{"EVAL", "return redis.call('set', KEYS[1], 'v')", 1, "cache:2"},
	{"EVAL", "return #redis.call('keys', '*')", 0},
	{"EVAL", "return redis.call('publish', 'news.eu', 'm')", 0},
	{"EVAL", "return redis.call('publish', 'secret', 'm')", 0},
	{"EVAL", "return redis.call('config', 'get', 'maxmemory')", 0},
	{"EVAL", "return redis.call('flushdb')", 0},
	{"EVAL", "return redis.call('flushall')", 0},
	{"EVAL_RO", "return redis.call('get', 'secret')", 0},
	{"EVAL_RO", "return redis.call('get', KEYS[1])", 1, "secret"},
	{"EVALSHA", scriptSHA, 0},
	{"EVALSHA_RO", scriptSHA, 0},
	{"FCALL", "getsecret", 0},
	{"FCALL_RO", "rosecret", 0},
	{"FCALL", "flush", 0},
	{"FCALL", "getkey", 1, "cache:1"},
}

const (
	scriptBody = "return redis.call('get', 'secret')"
	scriptLib  = "#!lua name=lib\n" +
		"redis.register_function('getsecret', function(k, a) return redis.call('get', 'secret') end)\n" +
		"redis.register_function('getkey', function(k, a) return redis.call('get', k[1]) end)\n" +
		"redis.register_function('flush', function(k, a) return redis.call('flushdb') end)\n" +
		"redis.register_function{function_name='rosecret', callback=function(k, a) return redis.call('get', 'secret') end, flags={'no-writes'}}"
)

// scriptSHA is scriptBody's SHA1, as SCRIPT LOAD returns it.
var scriptSHA = func() string {
	sum := sha1.Sum([]byte(scriptBody))
	return hex.EncodeToString(sum[:])
}()

// populate gives db the keys every script case starts from.
func populate(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := ctxT(t)
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, "secret", "s3cret", 0)
	c.Set(ctx, "cache:1", "c1", 0)
	c.Set(ctx, "other", "o", 0)
}

// outcome renders a reply and the database it leaves behind.
func outcome(t *testing.T, c *redis.Client, res any, err error) string {
	t.Helper()
	ctx := ctxT(t)
	secret, _ := c.Get(ctx, "secret").Result()
	return fmt.Sprintf("reply %v %v; secret=%q dbsize=%d", res, err, secret, c.DBSize(ctx).Val())
}

// runScriptsBothWays runs scriptCorpus as each user directly on Redis (as
// "direct:<name>" with oracleRules) in db 1 and through the proxy (as
// <name>) in db 2, and compares the replies and what the database holds
// afterwards.
func runScriptsBothWays(t *testing.T, tp *testProxy, users []scriptCase, oracleRules func(string) string, check func(t *testing.T, u scriptCase, args []any, direct, proxied string)) {
	ctx := ctxT(t)
	admin := tp.direct(t)
	if got := admin.ScriptLoad(ctx, scriptBody).Val(); got != scriptSHA {
		t.Fatalf("SCRIPT LOAD = %s, want %s", got, scriptSHA)
	}
	if err := admin.FunctionLoadReplace(ctx, scriptLib).Err(); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		rules := append([]any{"ACL", "SETUSER", "direct:" + u.name, "reset", "on", ">pw"}, words(oracleRules(u.rules))...)
		if err := admin.Do(ctx, rules...).Err(); err != nil {
			t.Fatalf("ACL SETUSER direct:%s: %v", u.name, err)
		}
	}
	for _, u := range users {
		direct := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, Protocol: 2, DB: 1, Username: "direct:" + u.name, Password: "pw", DisableIdentity: true})
		proxied := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password, o.DB = u.name, "pw", 2 })
		seeDirect := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, Protocol: 2, DB: 1, DisableIdentity: true})
		seeProxied := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, Protocol: 2, DB: 2, DisableIdentity: true})
		for _, args := range scriptCorpus {
			populate(t, seeDirect)
			res, err := direct.Do(ctx, args...).Result()
			want := outcome(t, seeDirect, res, err)
			populate(t, seeProxied)
			res, err = proxied.Do(ctx, args...).Result()
			got := outcome(t, seeProxied, res, err)
			check(t, u, args, want, got)
		}
		for _, c := range []*redis.Client{direct, seeDirect, seeProxied} {
			c.Close()
		}
	}
}

// scriptUsers differ in keys, channels and commands; "full" is unrestricted.
var scriptUsersCases = []scriptCase{
	{"keys", "~cache:* &* +@all"},
	{"chans", "~* resetchannels &news.* +@all"},
	{"cmds", "~* &* +@all -flushdb -keys -@admin"},
	{"ro", "%R~* &* +@read +@scripting +select"},
	{"full", "~* &* +@all"},
}

func scriptPolicy(t *testing.T, cfg policy.Config) *policy.Policy {
	t.Helper()
	cfg.Users = map[string]string{}
	for _, u := range scriptUsersCases {
		cfg.Users[u.name] = "on >pw " + u.rules
	}
	p, err := policy.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScriptsRunWithTheCallersRules: with script_identity mirror, every
// script and function has the same outcome through respguard as when the
// same user runs it on Redis itself, with and without the production
// preset and policy.rename.
func TestScriptsRunWithTheCallersRules(t *testing.T) {
	presetRules := func() string {
		var rules []string
		for _, r := range policy.ProductionRules {
			rules = append(rules, r.Rule)
		}
		return strings.Join(rules, " ")
	}()
	for _, tt := range []struct {
		name   string
		cfg    policy.Config
		oracle func(string) string
	}{
		{"plain rules", policy.Config{ScriptIdentity: policy.ScriptsMirror}, func(r string) string { return r }},
		{"production preset and FLUSHALL renamed away", policy.Config{
			ScriptIdentity: policy.ScriptsMirror, DefaultRules: policy.PresetProduction, Rename: map[string]string{"FLUSHALL": ""},
		}, func(r string) string { return r + " " + presetRules + " -flushall" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: scriptPolicy(t, tt.cfg)})
			compared := 0
			runScriptsBothWays(t, tp, scriptUsersCases, tt.oracle, func(t *testing.T, u scriptCase, args []any, want, got string) {
				compared++
				if testing.Verbose() {
					t.Logf("user %s: %v: %s", u.name, args[:2], got)
				}
				if got != want {
					t.Errorf("user %s: %v:\n respguard %s\n redis     %s", u.name, args, got, want)
				}
			})
			t.Logf("%d script outcomes compared", compared)
		})
	}
}

// TestScriptsOfRestrictedUsersAreRefused: with the default script_identity
// (refuse), a restricted user's scripts get a NOPERM naming the setting,
// never run; an unrestricted user's run as on Redis. FUNCTION LOAD stays
// allowed: a library cannot call Redis while it loads.
func TestScriptsOfRestrictedUsersAreRefused(t *testing.T) {
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: scriptPolicy(t, policy.Config{})})
	keys := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "keys", "pw" })
	lib := "#!lua name=evil\nredis.call('set', 'pwned', '1')\nredis.register_function('f', function() return 1 end)"
	err := keys.FunctionLoad(ctxT(t), lib).Err()
	if err == nil || !strings.Contains(err.Error(), "nonexistent global variable 'call'") || tp.direct(t).Exists(ctxT(t), "pwned").Val() != 0 {
		t.Fatalf("FUNCTION LOAD calling Redis while it loads: %v", err)
	}
	runScriptsBothWays(t, tp, scriptUsersCases, func(r string) string { return r }, func(t *testing.T, u scriptCase, args []any, want, got string) {
		switch {
		case u.name == "full" && got != want:
			t.Errorf("unrestricted user: %v:\n respguard %s\n redis     %s", args, got, want)
		case u.name != "full" && !strings.Contains(got, "policy.script_identity: mirror") && !strings.Contains(got, "NOPERM this user"):
			t.Errorf("user %s: %v: %s, want a refusal", u.name, args, got)
		case u.name != "full" && !strings.Contains(got, `secret="s3cret" dbsize=3`):
			t.Errorf("user %s: %v changed the database: %s", u.name, args, got)
		}
	})
}

// TestMirrorUsersFollowReloads: a reload that widens a user's keys lets its
// scripts read more at once; one that removes the user deletes its mirror
// from Redis; a restart deletes mirrors an earlier run left behind.
func TestMirrorUsersFollowReloads(t *testing.T) {
	rs := redistest.Start(t)
	pol := func(users map[string]string) *policy.Policy {
		return newPolicy(t, policy.Config{ScriptIdentity: policy.ScriptsMirror, Users: users})
	}
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	ctx := ctxT(t)
	admin.Do(ctx, "ACL", "SETUSER", policy.MirrorPrefix+"leftover", "on", ">x", "+@all")
	tp := startProxyWith(t, rs, nil, Options{Policy: pol(map[string]string{"app": "on >pw ~cache:* +@all"})})
	admin.Set(ctx, "secret", "s3cret", 0)
	app := tp.client(t, 3, func(o *redis.Options) { o.Username, o.Password = "app", "pw" })
	read := "return redis.call('get', 'secret')"
	if err := app.Eval(ctx, read, nil).Err(); err == nil || !strings.Contains(err.Error(), "can't access") {
		t.Fatalf("before the reload: %v, want Redis's key denial", err)
	}
	users := admin.Do(ctx, "ACL", "USERS").String()
	if strings.Contains(users, "leftover") || !strings.Contains(users, policy.MirrorName("app")) {
		t.Fatalf("ACL USERS = %s: want app's mirror, not the left-over one", users)
	}
	tp.Server.SetPolicy(pol(map[string]string{"app": "on >pw ~cache:* ~secret +@all"}))
	if v, err := app.Eval(ctx, read, nil).Result(); err != nil || v != "s3cret" {
		t.Fatalf("after widening: %v, %v", v, err)
	}
	// Deleted behind respguard's back (Redis disconnects its connections):
	// set up again by a later script.
	admin.Do(ctx, "ACL", "DELUSER", policy.MirrorName("app"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := app.Eval(ctx, read, nil).Result()
		if err == nil && v == "s3cret" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the mirror was deleted: %v, %v", v, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval; the condition above is what is waited for
	}
	tp.Server.SetPolicy(pol(map[string]string{"other": "on >pw ~x +@all"}))
	users = admin.Do(ctx, "ACL", "USERS").String()
	if strings.Contains(users, policy.MirrorName("app")) || !strings.Contains(users, policy.MirrorName("other")) {
		t.Fatalf("ACL USERS after removing app = %s", users)
	}
}

// TestScriptsWithoutMirrorAreRefused: when respguard's upstream user may not
// run ACL SETUSER, or the client is in a transaction, a restricted user's
// script is refused with a NOPERM that says why, and never runs.
func TestScriptsWithoutMirrorAreRefused(t *testing.T) {
	rs := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	ctx := ctxT(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "up", "on", ">up", "~*", "&*", "+@all", "-acl").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Set(ctx, "secret", "s3cret", 0)
	pol := newPolicy(t, policy.Config{ScriptIdentity: policy.ScriptsMirror, Users: map[string]string{"app": "on >pw ~cache:* +@all"}})
	tp := startProxyWith(t, rs, func(_ *Config, p *pool.Config) { p.Username, p.Password = "up", "up" }, Options{Policy: pol})
	app := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "app", "pw" })
	set := "return redis.call('set', 'secret', 'stolen')"
	err := app.Eval(ctx, set, nil).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "ACL SETUSER") {
		t.Fatalf("EVAL without a mirror: %v", err)
	}
	if v := admin.Get(ctx, "secret").Val(); v != "s3cret" {
		t.Fatalf("secret = %q", v)
	}
	// Once the upstream user may create users, the mirror is set up when
	// the next script calls for it (at most once a second).
	admin.Do(ctx, "ACL", "SETUSER", "up", "+acl")
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = app.Eval(ctx, set, nil).Err()
		if err != nil && strings.Contains(err.Error(), "can't access") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror was not set up again: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval; the condition above is what is waited for
	}

	tp = startProxyWith(t, rs, nil, Options{Policy: pol})
	app = tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "app", "pw" })
	cmds, err := app.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "cache:1", "v", 0)
		p.Eval(ctx, set, nil)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "EXECABORT") || len(cmds) != 2 || !strings.Contains(fmt.Sprint(cmds[1].Err()), "MULTI") {
		t.Fatalf("EVAL in MULTI: %v %v", cmds, err)
	}
	if admin.Get(ctx, "secret").Val() != "s3cret" || admin.Exists(ctx, "cache:1").Val() != 0 {
		t.Fatal("the transaction ran")
	}
}

// TestTwoRespguardsShareMirrors: a second respguard in front of the same
// Redis sets up the same mirror users without locking the first one out.
func TestTwoRespguardsShareMirrors(t *testing.T) {
	rs := redistest.Start(t)
	pol := newPolicy(t, policy.Config{ScriptIdentity: policy.ScriptsMirror, Users: map[string]string{"app": "on >pw ~cache:* +@all"}})
	first := startProxyWith(t, rs, nil, Options{Policy: pol})
	second := startProxyWith(t, rs, nil, Options{Policy: pol})
	ctx := ctxT(t)
	for _, tp := range []*testProxy{first, second} {
		app := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "app", "pw" })
		if v, err := app.Eval(ctx, "return redis.call('set', KEYS[1], 'v')", []string{"cache:1"}).Result(); err != nil || v != "OK" {
			t.Fatalf("script through %s: %v, %v", tp.Addr, v, err)
		}
	}
}

// TestScriptsRunAsTheOperatorsUser: on an upstream where respguard may not
// create users, policy.script_users maps a proxy user to a Redis user the
// operator created; its scripts run as that user and Redis judges them.
func TestScriptsRunAsTheOperatorsUser(t *testing.T) {
	rs := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	ctx := ctxT(t)
	for _, rules := range [][]any{
		{"ACL", "SETUSER", "up", "on", ">up", "~*", "&*", "+@all", "-acl"},
		{"ACL", "SETUSER", "ops-app", "on", ">ops-secret", "~cache:*", "+@all"},
	} {
		if err := admin.Do(ctx, rules...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	admin.Set(ctx, "secret", "s3cret", 0)
	pwFile := t.TempDir() + "/ops-app"
	if err := os.WriteFile(pwFile, []byte("ops-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := newPolicy(t, policy.Config{
		ScriptIdentity: policy.ScriptsMirror, Users: map[string]string{"app": "on >pw ~cache:* +@all"},
		ScriptUsers: map[string]string{"app": "ops-app"}, ScriptPasswordFiles: map[string]string{"app": pwFile},
	})
	tp := startProxyWith(t, rs, func(_ *Config, p *pool.Config) { p.Username, p.Password = "up", "up" }, Options{Policy: pol})
	app := tp.client(t, 2, func(o *redis.Options) { o.Username, o.Password = "app", "pw" })
	if err := app.Eval(ctx, "return redis.call('get', 'secret')", nil).Err(); err == nil || !strings.Contains(err.Error(), "can't access") {
		t.Fatalf("reading secret as ops-app: %v", err)
	}
	if v, err := app.Eval(ctx, "return redis.call('set', KEYS[1], 'v')", []string{"cache:1"}).Result(); err != nil || v != "OK" {
		t.Fatalf("writing cache:1 as ops-app: %v, %v", v, err)
	}
	if who := admin.Do(ctx, "CLIENT", "LIST").String(); !strings.Contains(who, "user=ops-app") {
		t.Fatalf("no connection as ops-app: %s", who)
	}
}
