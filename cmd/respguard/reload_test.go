package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool/redistest"
)

func TestReloadSortsChangedKeys(t *testing.T) {
	_, old, err := load(newFlags(), []string{"--config", writeConfig(t, "policy:\n  users:\n    app: \"on nopass ~* +@all\"\n")}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, next, err := load(newFlags(), []string{"--config", writeConfig(t,
		"listen: 127.0.0.1:7009\npool:\n  max_conns: 8\nguard:\n  max_elements: 5\npolicy:\n  users:\n    app: \"on nopass ~x* +@all\"\n")}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	applied, restartOnly := splitReloadable(changedKeys(old, next))
	if fmt.Sprint(applied) != "[guard.max_elements policy.users]" || fmt.Sprint(restartOnly) != "[listen pool.max_conns]" {
		t.Fatalf("applied = %v, restart-only = %v", applied, restartOnly)
	}
	if keys := changedKeys(old, old); len(keys) != 0 {
		t.Fatalf("an unchanged config reports %v", keys)
	}
}

func TestLoweredProtectionIsDescribed(t *testing.T) {
	old := Config{Policy: policy.Config{Mode: policy.ModeEnforce, DefaultRules: "production",
		Users: map[string]string{"App": "on", "ops": "on"}, Rename: map[string]string{"FLUSHALL": ""}}}
	next := Config{Policy: policy.Config{Mode: policy.ModeAudit, Users: map[string]string{"ops": "on"}}}
	got := strings.Join(loweredProtection(old, next), "; ")
	for _, want := range []string{"policy.users removed: App", "policy.rename entries removed: FLUSHALL", `policy.default_rules: "production" -> ""`, "policy.mode"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := loweredProtection(next, old); len(got) != 0 {
		t.Errorf("raising protection reported as lowering: %v", got)
	}
}

func TestLoosenedUserRulesAndGuardSettingsLowerProtection(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"a user's -keys dropped":        {func(c *Config) { c.Policy.Users["app"] = "on >pw ~* +@all" }, "policy.users.app: rules dropped: -keys"},
		"a user switched on":            {func(c *Config) { c.Policy.Users["ops"] = "on >pw ~ops:* +get" }, "policy.users.ops: rules dropped: off; rules added: on"},
		"a user's keys widened":         {func(c *Config) { c.Policy.Users["ops"] = "off >pw ~ops:* ~* +get" }, "policy.users.ops: rules added: ~*"},
		"a require_ttl pattern removed": {func(c *Config) { c.Guard.RequireTTL = []string{"session:*"} }, "guard.require_ttl patterns removed: cache:*"},
		"max_elements raised":           {func(c *Config) { c.Guard.MaxElements = 20000 }, "guard.max_elements: 10000 -> 20000"},
		"oversize to audit":             {func(c *Config) { c.Guard.Oversize = guard.OversizeAudit }, `guard.oversize: "reject" -> "audit"`},
		"unlink switched off":           {func(c *Config) { c.Guard.Unlink.Mode = guard.UnlinkOff }, `guard.unlink.mode: "large" -> "off"`},
		"unlink threshold raised":       {func(c *Config) { c.Guard.Unlink.MinElements = 1000 }, "guard.unlink.min_elements: 128 -> 1000"},
		"unlink min_bytes raised":       {func(c *Config) { c.Guard.Unlink.MinBytes = 2 << 20 }, "guard.unlink.min_bytes: 1048576 -> 2097152"},
		"flush_async off":               {func(c *Config) { c.Guard.FlushAsync = false }, "guard.flush_async: true -> false"},
		"a stream cap removed":          {func(c *Config) { c.Guard.StreamMaxlen = nil }, "guard.stream_maxlen removed: events:*"},
		"a stream cap raised":           {func(c *Config) { c.Guard.StreamMaxlen[0].Maxlen = 5000 }, "guard.stream_maxlen events:*: 1000 -> 5000"},
	} {
		t.Run(name, func(t *testing.T) {
			old, next := guardedConfig(), guardedConfig()
			tc.change(&next)
			got := strings.Join(loweredProtection(old, next), "; ")
			if !strings.Contains(got, tc.want) {
				t.Fatalf("lowered = %q, want %q", got, tc.want)
			}
			if back := loweredProtection(next, old); len(back) != 0 {
				t.Fatalf("undoing it reported as lowering: %v", back)
			}
		})
	}
	if got := loweredProtection(guardedConfig(), guardedConfig()); len(got) != 0 {
		t.Fatalf("an unchanged config reported as lowering: %v", got)
	}
}

// guardedConfig is a configuration with every guard protection on and two users.
func guardedConfig() Config {
	return Config{
		Policy: policy.Config{Mode: policy.ModeEnforce, Users: map[string]string{
			"app": "on >pw ~* +@all -keys", "ops": "off >pw ~ops:* +get"}},
		Guard: guard.Config{
			Unlink:     guard.UnlinkConfig{Mode: guard.UnlinkLarge, MinElements: 128, MinBytes: 1 << 20},
			FlushAsync: true, MaxElements: 10000, Oversize: guard.OversizeReject,
			StreamMaxlen: []guard.StreamMaxlen{{Pattern: "events:*", Maxlen: 1000}},
			RequireTTL:   []string{"session:*", "cache:*"},
		},
	}
}

// reloadHarness is a respguard binary serving a config file the test edits.
type reloadHarness struct {
	path          string
	listen, admin string
	stderr        *syncBuffer
}

func startReloadHarness(t *testing.T, body func(listen, admin string) string) *reloadHarness {
	bin := buildBinary(t)
	h := &reloadHarness{path: filepath.Join(t.TempDir(), "respguard.yaml"), stderr: &syncBuffer{},
		listen: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}
	h.write(t, body(h.listen, h.admin))
	cmd := exec.Command(bin, "--config", h.path)
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return h
}

func (h *reloadHarness) write(t *testing.T, body string) {
	t.Helper()
	if err := os.WriteFile(h.path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// metric reads one series from /metrics (0 if absent).
func (h *reloadHarness) metric(series string) float64 {
	resp, err := http.Get("http://" + h.admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// logged waits for a log line containing every one of parts.
func (h *reloadHarness) logged(t *testing.T, parts ...string) {
	t.Helper()
	poll(t, func() bool {
		for line := range strings.Lines(h.stderr.String()) {
			if containsAll(line, parts) {
				return true
			}
		}
		return false
	}, fmt.Sprintf("a log line with %q", parts))
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestBinaryReloadNeverLowersProtection edits the config file of a running
// respguard the ways editors and operators do, while a prober keeps trying
// KEYS * unauthenticated and as a user: the production preset and the
// disabled default user must hold throughout.
func TestBinaryReloadNeverLowersProtection(t *testing.T) {
	rs := redistest.Start(t)
	config := func(listen, admin, extraUser string) string {
		return fmt.Sprintf("listen: %s\nupstream:\n  address: %s\nadmin:\n  listen: %s\nsecurity:\n  auth_rate_limit: 0\n"+
			"policy:\n  default_rules: production\n  users:\n    default: \"off\"\n    AppUser: \"on >app-pw ~* +@all\"\n%s", listen, rs.Addr, admin, extraUser)
	}
	var h *reloadHarness
	h = startReloadHarness(t, func(listen, admin string) string { return config(listen, admin, "") })
	user := func(name, extra string) string {
		return config(h.listen, h.admin, fmt.Sprintf("    %s: \"on >%s-pw ~* +@all\"\n%s", name, name, extra))
	}
	ctx := context.Background()
	authOK := func(name, pass string) bool {
		c := redis.NewClient(&redis.Options{Addr: h.listen, Username: name, Password: pass, DisableIdentity: true, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err() == nil
	}
	poll(t, func() bool { return authOK("AppUser", "app-pw") }, "AUTH AppUser (user names keep their case)")
	if authOK("appuser", "app-pw") {
		t.Fatal("AUTH appuser succeeded: the user is AppUser")
	}

	var keysAllowed atomic.Int64
	stop := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		anon := redis.NewClient(&redis.Options{Addr: h.listen, DisableIdentity: true, MaxRetries: -1})
		app := redis.NewClient(&redis.Options{Addr: h.listen, Username: "AppUser", Password: "app-pw", DisableIdentity: true, MaxRetries: -1})
		defer anon.Close()
		defer app.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, c := range []*redis.Client{anon, app} {
				if c.Keys(ctx, "*").Err() == nil {
					keysAllowed.Add(1)
				}
			}
		}
	}()
	defer func() {
		close(stop)
		<-probed
		if n := keysAllowed.Load(); n > 0 {
			t.Errorf("KEYS * was allowed %d times while the file was being edited", n)
		}
	}()

	t.Run("truncating the file (: > file) keeps the running config", func(t *testing.T) {
		if err := os.Truncate(h.path, 0); err != nil {
			t.Fatal(err)
		}
		h.logged(t, "ERROR", "config reload failed", "no settings")
		poll(t, func() bool { return h.metric(`respguard_config_reloads_total{result="failure"}`) >= 1 }, "the failure counted")
		if !authOK("AppUser", "app-pw") {
			t.Fatal("AppUser lost after an empty file")
		}
	})
	t.Run("truncate, then write, as an editor saves", func(t *testing.T) {
		f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the editor's gap between truncating and writing
		if _, err := f.WriteString(user("Second", "")); err != nil {
			t.Fatal(err)
		}
		f.Close()
		poll(t, func() bool { return authOK("Second", "Second-pw") }, "the rewritten file applied")
	})
	t.Run("write a temporary file, then rename it over the config", func(t *testing.T) {
		tmp := h.path + ".swp"
		if err := os.WriteFile(tmp, []byte(user("Third", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, h.path); err != nil {
			t.Fatal(err)
		}
		poll(t, func() bool { return authOK("Third", "Third-pw") }, "the renamed file applied")
		if authOK("Second", "Second-pw") {
			t.Fatal("a user removed from the file can still AUTH")
		}
		h.logged(t, "WARN", "config reload lowers protection", "policy.users removed: Second")
	})
	t.Run("an invalid file keeps the running config", func(t *testing.T) {
		h.write(t, user("Fourth", "client:\n  idle_timeout: 300\n"))
		h.logged(t, "ERROR", "config reload failed", "client.idle_timeout", "300s")
		if authOK("Fourth", "Fourth-pw") || !authOK("Third", "Third-pw") {
			t.Fatal("part of an invalid file was applied")
		}
	})
	t.Run("deleting the file keeps the running config", func(t *testing.T) {
		if err := os.Remove(h.path); err != nil {
			t.Fatal(err)
		}
		h.logged(t, "ERROR", "config reload failed", "no such file")
		if !authOK("Third", "Third-pw") {
			t.Fatal("the running policy was dropped with the file")
		}
	})
	t.Run("restart-only keys are logged as not applied", func(t *testing.T) {
		h.write(t, user("Fifth", "pool:\n  max_conns: 8\n"))
		poll(t, func() bool { return authOK("Fifth", "Fifth-pw") }, "the policy part applied")
		h.logged(t, "WARN", "NOT applied", "pool.max_conns")
		h.logged(t, "INFO", "config reloaded", "applied=[policy.users]")
		for line := range strings.Lines(h.stderr.String()) {
			if strings.Contains(line, "config reloaded") && strings.Contains(line, "pool.max_conns") {
				t.Errorf("a restart-only key is logged as reloaded: %s", line)
			}
		}
		if got := h.metric(`respguard_config_reloads_total{result="success"}`); got < 3 {
			t.Errorf("success reloads = %v, want at least 3", got)
		}
		if got := h.metric("respguard_config_last_reload_success_timestamp_seconds"); got < float64(time.Now().Add(-time.Hour).Unix()) {
			t.Errorf("last success timestamp = %v", got)
		}
	})
}
