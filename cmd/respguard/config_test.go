package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "respguard.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, "listen: 127.0.0.1:7001\nupstream:\n  address: 10.0.0.1:6379\npool:\n  max_conns: 7\n")
	t.Run("the file overrides defaults", func(t *testing.T) {
		_, cfg, err := load(newFlags(), []string{"--config", path}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:7001" || cfg.Pool.MaxConns != 7 || cfg.Pool.SharedConns != 1 {
			t.Fatalf("cfg = %+v", cfg)
		}
	})
	t.Run("env overrides the file", func(t *testing.T) {
		t.Setenv("RESPGUARD_LISTEN", "127.0.0.1:7002")
		t.Setenv("RESPGUARD_UPSTREAM_ADDRESS", "10.0.0.2:6379")
		t.Setenv("RESPGUARD_CLIENT_IDLE_TIMEOUT", "90s")
		_, cfg, err := load(newFlags(), []string{"--config", path}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:7002" || cfg.Upstream.Address != "10.0.0.2:6379" || cfg.Client.IdleTimeout != 90*time.Second {
			t.Fatalf("cfg = %+v", cfg)
		}
	})
	t.Run("flags override env", func(t *testing.T) {
		t.Setenv("RESPGUARD_LISTEN", "127.0.0.1:7002")
		_, cfg, err := load(newFlags(), []string{"--config", path, "--listen", "127.0.0.1:7003", "--upstream", "10.0.0.3:6379"}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:7003" || cfg.Upstream.Address != "10.0.0.3:6379" {
			t.Fatalf("cfg = %+v", cfg)
		}
	})
}

func TestConfigRefusesBadInput(t *testing.T) {
	cases := map[string]badConfig{
		"an unknown key is named":           {"upstream:\n  adress: x:1\n", "adress"},
		"a value of the wrong type":         {"pool:\n  max_conns: lots\n", "max_conns"},
		"a negative limit":                  {"client:\n  max_clients: -1\n", "client.max_clients"},
		"an address without a port":         {"listen: localhost\n", "listen"},
		"min idle above max conns":          {"pool:\n  max_conns: 2\n  min_idle_conns: 3\n", "pool.min_idle_conns"},
		"a duration that is not a duration": {"client:\n  idle_timeout: soon\n", "idle_timeout"},
		"an unknown scheduling policy":      {"sched_policy: fifo\n", "sched_policy"},
	}
	expectRefused(t, cases)
}

func TestPasswordFileAndPrintConfigMasksSecrets(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(secret, []byte("s3cret-from-file\n"), 0o600)
	path := writeConfig(t, "upstream:\n  password_file: "+secret+"\n")
	v, cfg, err := load(newFlags(), []string{"--config", path}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Password != "s3cret-from-file" {
		t.Fatalf("password = %q", cfg.Upstream.Password)
	}
	t.Setenv("RESPGUARD_UPSTREAM_PASSWORD", "env-secret")
	t.Setenv("RESPGUARD_UPSTREAM_SENTINEL_PASSWORD", "sentinel-secret")
	withUser := writeConfig(t, "policy:\n  users:\n    app: \"on >user-secret ~* +get\"\n  rename:\n    CONFIG: CONFIG-rename-secret\n")
	v, cfg, err = load(newFlags(), []string{"--config", withUser}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	f, _ := os.Create(out)
	if err := printConfig(v, cfg, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(out)
	if strings.Contains(string(b), "env-secret") || strings.Contains(string(b), "user-secret") || strings.Contains(string(b), "sentinel-secret") || strings.Contains(string(b), "rename-secret") || !strings.Contains(string(b), "********") || !strings.Contains(string(b), "max_conns: 64") {
		t.Fatalf("print-config output:\n%s", b)
	}
}

func noEnv(string) (string, bool) { return "", false }

// badConfig is a config file body and the key its error must name.
type badConfig struct{ body, wantKey string }

// expectRefused loads each body and expects an error naming its key.
func expectRefused(t *testing.T, cases map[string]badConfig) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, tc.body)}, noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("err = %v, want one naming %q", err, tc.wantKey)
			}
		})
	}
}

func TestZeroIsRefusedWhereItWouldSilentlyMeanTheDefault(t *testing.T) {
	for _, key := range []string{"pool.max_conns", "pool.shared_conns", "client.max_clients", "client.max_pending",
		"client.output_buffer_limit", "client.write_timeout", "guard.max_elements"} {
		t.Run(key+": 0", func(t *testing.T) {
			_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, nested(key, "0"))}, noEnv)
			if err == nil || !strings.HasPrefix(err.Error(), key+": ") {
				t.Fatalf("err = %v (client %+v, guard max_elements %d), want one naming %s", err, cfg.Client, cfg.Guard.MaxElements, key)
			}
		})
	}
	t.Run("from the environment, naming the variable", func(t *testing.T) {
		t.Setenv("RESPGUARD_GUARD_MAX_ELEMENTS", "0")
		_, _, err := load(newFlags(), nil, noEnv)
		if err == nil || !strings.Contains(err.Error(), "guard.max_elements (RESPGUARD_GUARD_MAX_ELEMENTS): ") || !strings.Contains(err.Error(), "guard.oversize: off") {
			t.Fatalf("err = %v", err)
		}
	})
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for key, def := range defaults() {
		if !isNonZeroNumber(def) {
			continue
		}
		t.Run("every key with a non-zero default: "+key, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, nested(key, "0"))}, noEnv)
			if err == nil {
				row := readmeRow(string(readme), key)
				if !strings.Contains(row, "0 = ") && !strings.Contains(row, "0: ") {
					t.Fatalf("%s: 0 is accepted but README's table does not say what it means: %q", key, row)
				}
				return
			}
			if !strings.HasPrefix(err.Error(), key+": ") {
				t.Fatalf("err = %v, want one naming %s", err, key)
			}
		})
	}
}

// isNonZeroNumber reports whether a default is a number (or duration) other than 0.
func isNonZeroNumber(v any) bool {
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		return !rv.IsZero()
	}
	return false
}

// readmeRow is the configuration table's row for key ("" if none).
func readmeRow(readme, key string) string {
	for line := range strings.Lines(readme) {
		if strings.HasPrefix(line, "| `"+key+"`") {
			return line
		}
	}
	return ""
}
