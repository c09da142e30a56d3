package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// TestRespguardReloadAndConfigInForce runs respguard in-process with no
// config file watch and no SIGHUP, so RESPGUARD RELOAD is the only thing
// that can reload the file the test edits.
func TestRespguardReloadAndConfigInForce(t *testing.T) {
	rs := redistest.Start(t, "--requirepass", "upstream-secret-1")
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	body := func(appRules string) string {
		return fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\nupstream:\n  address: %s\n  password: upstream-secret-1\n"+
			"policy:\n  users:\n    Ops: \"on >ops-secret-2 ~* +@all\"\n    app: \"on >app-secret-3 ~* %s\"\n"+
			"  rename:\n    CONFIG: CONFIG-secret-4\n    FLUSHALL: \"\"\n", listen, rs.Addr, appRules)
	}
	path := writeConfig(t, body("+get"))
	args := []string{"--config", path}
	_, cfg, err := load(newFlags(), args, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	reload := func() (Config, error) {
		_, c, err := load(newFlags(), args, noEnv)
		return c, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, slog.New(slog.DiscardHandler), reload, "") }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	client := func(user, pw string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: listen, Username: user, Password: pw, Protocol: 3, MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ops, app := client("Ops", "ops-secret-2"), client("app", "app-secret-3")
	tctx := t.Context()
	poll(t, func() bool { return ops.Ping(tctx).Err() == nil }, "respguard serving")
	settingsNow := func() map[string]string {
		t.Helper()
		v, err := ops.Do(tctx, "RESPGUARD", "CONFIG").Result()
		if err != nil {
			t.Fatalf("RESPGUARD CONFIG: %v", err)
		}
		out := map[string]string{}
		for k, v := range v.(map[any]any) {
			out[k.(string)] = v.(string)
		}
		return out
	}

	t.Run("CONFIG shows the configuration in force with secrets masked", func(t *testing.T) {
		s := settingsNow()
		for k, want := range map[string]string{
			"upstream.address": rs.Addr, "upstream.password": "********", "listen": listen,
			"policy.users.Ops": "on >******** ~* +@all", "policy.users.app": "on >******** ~* +get",
			"upstream.dial_timeout": "5s", "pool.max_conns": "64",
			"policy.rename.CONFIG": "********", "policy.rename.FLUSHALL": "",
		} {
			if s[k] != want {
				t.Errorf("%s = %q, want %q", k, s[k], want)
			}
		}
		for k, v := range s {
			if strings.Contains(v, "secret") {
				t.Errorf("%s shows a secret: %q", k, v)
			}
		}
	})
	t.Run("RELOAD applies the changed file", func(t *testing.T) {
		if err := app.Set(tctx, "k", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Fatalf("SET before the reload: %v", err)
		}
		if err := os.WriteFile(path, []byte(body("+get +set")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := app.Set(tctx, "k", "v", 0).Err(); err == nil {
			t.Fatal("the file was applied before RELOAD")
		}
		if v, err := ops.Do(tctx, "RESPGUARD", "RELOAD").Result(); err != nil || v != "OK" {
			t.Fatalf("RELOAD = %v, %v", v, err)
		}
		if err := app.Set(tctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET after the reload: %v", err)
		}
		if got := settingsNow()["policy.users.app"]; got != "on >******** ~* +get +set" {
			t.Errorf("CONFIG after the reload: app = %q", got)
		}
	})
	t.Run("a refused RELOAD says why and keeps the running configuration", func(t *testing.T) {
		if err := os.WriteFile(path, []byte(body("+nosuchcommand")), 0o600); err != nil {
			t.Fatal(err)
		}
		err := ops.Do(tctx, "RESPGUARD", "RELOAD").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ERR respguard: config reload failed; the running configuration stays in force: ") ||
			!strings.Contains(err.Error(), "nosuchcommand") {
			t.Fatalf("RELOAD of a bad file = %v", err)
		}
		if err := app.Set(tctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET after the refused reload: %v", err)
		}
	})
	t.Run("only users granted it run it", func(t *testing.T) {
		err := app.Do(tctx, "RESPGUARD", "RELOAD").Err()
		if err == nil || err.Error() != "NOPERM this user has no permissions to run the 'respguard|reload' command" {
			t.Fatalf("app's RELOAD = %v", err)
		}
	})
}
