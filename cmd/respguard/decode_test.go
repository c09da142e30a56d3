package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/policy"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "512mb": 512 << 20, "512MB": 512 << 20, "64KB": 64 << 10, "64kb": 64 << 10,
		"1gb": 1 << 30, "2GiB": 2 << 30, "3mib": 3 << 20, "5KiB": 5 << 10, "1k": 1000, "2m": 2_000_000,
		"1g": 1_000_000_000, "10b": 10, "0": 0, " 8 MB ": 8 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "mb", "1.5gb", "-1mb", "1tb", "512 potatoes", "0x10", "99999999999999gb"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// sizeFields reads each size key's decoded value.
var sizeFields = map[string]func(Config) int64{
	"client.max_bulk_len":             func(c Config) int64 { return c.Client.MaxBulkLen },
	"client.max_inline_size":          func(c Config) int64 { return int64(c.Client.MaxInlineSize) },
	"client.query_buffer_limit":       func(c Config) int64 { return int64(c.Client.QueryBufferLimit) },
	"client.output_buffer_limit":      func(c Config) int64 { return int64(c.Client.OutputBufferLimit) },
	"client.output_buffer_soft_limit": func(c Config) int64 { return int64(c.Client.OutputBufferSoftLimit) },
	"guard.unlink.min_bytes":          func(c Config) int64 { return c.Guard.Unlink.MinBytes },
}

// nested writes a dotted key and value as a YAML document.
func nested(key, value string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i < len(parts)-1 {
			b.WriteString("\n")
		}
	}
	return b.String() + " " + value + "\n"
}

func TestEverySizeKeyTakesUnits(t *testing.T) {
	if len(sizeFields) != len(sizeKeys) {
		t.Fatalf("sizeFields covers %d keys, sizeKeys has %d", len(sizeFields), len(sizeKeys))
	}
	for _, key := range sizeKeys {
		for value, want := range map[string]int64{"64KB": 64 << 10, "1mb": 1 << 20, "2GiB": 2 << 30, "1000000": 1_000_000, `"4096"`: 4096, "1K": 1000} {
			t.Run(key+" = "+value, func(t *testing.T) {
				_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, nested(key, value))}, noEnv)
				if err != nil {
					t.Fatal(err)
				}
				if got := sizeFields[key](cfg); got != want {
					t.Fatalf("%s = %d, want %d", key, got, want)
				}
			})
		}
		t.Run(key+" refuses a size it cannot read, naming the key", func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, nested(key, "12 parsecs"))}, noEnv)
			if err == nil || !strings.HasPrefix(err.Error(), key+": ") || strings.Contains(err.Error(), "strconv") {
				t.Fatalf("err = %v, want one starting %q", err, key+": ")
			}
		})
	}
	t.Run("from the environment too", func(t *testing.T) {
		t.Setenv("RESPGUARD_CLIENT_MAX_BULK_LEN", "256mb")
		_, cfg, err := load(newFlags(), nil, noEnv)
		if err != nil || cfg.Client.MaxBulkLen != 256<<20 {
			t.Fatalf("max_bulk_len = %d, %v", cfg.Client.MaxBulkLen, err)
		}
	})
}

func TestBareNumbersAreNotDurations(t *testing.T) {
	for _, tc := range []struct{ key, value, fix string }{
		{"client.idle_timeout", "300", "300s"},
		{"upstream.dial_timeout", "5", "5s"},
		{"pool.idle_timeout", "1.5", "1.5s"},
		{"telemetry.slowlog.threshold", `"10"`, "10s"},
	} {
		t.Run(tc.key+": "+tc.value, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, nested(tc.key, tc.value))}, noEnv)
			if err == nil || !strings.HasPrefix(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.fix) {
				t.Fatalf("err = %v, want one naming %s and suggesting %s", err, tc.key, tc.fix)
			}
		})
	}
	t.Run("from the environment, naming the variable", func(t *testing.T) {
		t.Setenv("RESPGUARD_CLIENT_IDLE_TIMEOUT", "300")
		_, _, err := load(newFlags(), nil, noEnv)
		if err == nil || !strings.Contains(err.Error(), "RESPGUARD_CLIENT_IDLE_TIMEOUT") || !strings.Contains(err.Error(), "300s") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("0 still means off, and units work", func(t *testing.T) {
		_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, "client:\n  idle_timeout: 0\n  write_timeout: 90s\nupstream:\n  dial_timeout: 1m30s\n")}, noEnv)
		if err != nil || cfg.Client.IdleTimeout != 0 || cfg.Client.WriteTimeout != 90*time.Second || cfg.Upstream.DialTimeout != 90*time.Second {
			t.Fatalf("cfg.Client = %+v, %v", cfg.Client, err)
		}
	})
}

func TestErrorsNameTheKeyAsWritten(t *testing.T) {
	for name, tc := range map[string]struct{ body, want, notWant string }{
		"an unknown top-level key":               {"bogus: 1\n", "bogus: unknown key", "main.Config"},
		"an unknown nested key":                  {"upstream:\n  adress: x:1\n", "upstream.adress: unknown key", "'upstream'"},
		"a bad log level":                        {"log:\n  level: verbose\n", "log.level: ", "telemetry.log"},
		"a word for a number":                    {"pool:\n  max_conns: lots\n", `pool.max_conns: want a whole number, got "lots"`, "strconv"},
		"a word for a boolean":                   {"guard:\n  flush_async: perhaps\n", "guard.flush_async: want true or false", "strconv"},
		"a mapping where a list of strings goes": {"guard:\n  require_ttl:\n    a: b\n", "guard.require_ttl: want a list, got map[a:b]", "[]string"},
		"a list where a user rule goes":          {"policy:\n  users:\n    app: [a, b]\n", "policy.users.app: want a string", "map[string]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, tc.body)}, noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.notWant) {
				t.Fatalf("err = %v, want one containing %q and not %q", err, tc.want, tc.notWant)
			}
		})
	}
}

func TestConfigFileIsYAMLWhateverItsName(t *testing.T) {
	for _, name := range []string{"respguard.conf", "respguard", "config.yml"} {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte("pool:\n  max_conns: 9\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, cfg, err := load(newFlags(), []string{"--config", path}, noEnv); err != nil || cfg.Pool.MaxConns != 9 {
			t.Errorf("%s: max_conns = %d, %v", name, cfg.Pool.MaxConns, err)
		}
	}
}

func TestAnEmptyConfigFileIsRefused(t *testing.T) {
	for _, body := range []string{"", "\n", "# everything commented out\n#listen: x\n"} {
		if _, _, err := load(newFlags(), []string{"--config", writeConfig(t, body)}, noEnv); err == nil || !strings.Contains(err.Error(), "no settings") {
			t.Errorf("%q: err = %v", body, err)
		}
	}
}

func TestUnknownEnvironmentVariables(t *testing.T) {
	t.Run("one under a config section is an error naming it", func(t *testing.T) {
		t.Setenv("RESPGUARD_UPSTREAM_ADRESS", "10.0.0.1:6379")
		_, _, err := load(newFlags(), nil, noEnv)
		if err == nil || !strings.Contains(err.Error(), "RESPGUARD_UPSTREAM_ADRESS") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("another is a warning naming it", func(t *testing.T) {
		t.Setenv("RESPGUARD_BENCH_SCRIPT_KNOB", "1")
		l, err := loadAll(newFlags(), nil, noEnv)
		if err != nil || len(l.warnings) != 1 || l.warnings[0] != "RESPGUARD_BENCH_SCRIPT_KNOB" {
			t.Fatalf("warnings = %v, err = %v", l.warnings, err)
		}
	})
	t.Run("every key's own variable is known", func(t *testing.T) {
		var env []string
		for key := range defaults() {
			env = append(env, envName(key)+"=x")
		}
		env = append(env, configEnv+"=x", "RESPGUARD_POLICY_USERS_AppUser=x", "RESPGUARD_POLICY_RENAME_FLUSHALL=")
		if warnings, err := checkEnv(env, keysOf(defaults())); err != nil || len(warnings) > 0 {
			t.Fatalf("warnings = %v, err = %v", warnings, err)
		}
	})
}

func keysOf(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func TestNamedMapsKeepTheirCase(t *testing.T) {
	body := "policy:\n  users:\n    default: \"off\"\n    AppUser: \"on >app-pw ~* +@all\"\n  password_files:\n    AppUser: %s\n  rename:\n    FlushAll: \"\"\n"
	secret := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(secret, []byte("file-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RESPGUARD_POLICY_USERS_OpsUser", "on >ops-pw ~* +@all")
	_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, fmt.Sprintf(body, secret))}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Policy.PasswordFiles["AppUser"]; !ok {
		t.Errorf("password_files = %v", cfg.Policy.PasswordFiles)
	}
	if _, ok := cfg.Policy.Rename["FlushAll"]; !ok {
		t.Errorf("rename = %v", cfg.Policy.Rename)
	}
	pol, err := policy.New(cfg.Policy, policy.BuiltinCommands())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"AppUser", "app-pw", true}, {"AppUser", "file-pw", true}, {"appuser", "app-pw", false},
		{"OpsUser", "ops-pw", true}, {"opsuser", "ops-pw", false},
	} {
		if _, err := pol.Authenticate(tc.user, tc.pass); (err == nil) != tc.ok {
			t.Errorf("AUTH %s %s: err = %v, want ok = %v", tc.user, tc.pass, err, tc.ok)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	if err := run([]string{"--help"}); err != nil {
		t.Fatalf("run --help = %v", err)
	}
}

func TestListValuesSplitOnCommasAndWhitespace(t *testing.T) {
	for _, value := range []string{"a:1 b:2", "a:1,b:2", "a:1, b:2", " a:1\tb:2 ", "a:1,,b:2"} {
		t.Run("RESPGUARD_UPSTREAM_ADDRESSES="+value, func(t *testing.T) {
			t.Setenv("RESPGUARD_UPSTREAM_MODE", "cluster")
			t.Setenv("RESPGUARD_UPSTREAM_ADDRESSES", value)
			_, cfg, err := load(newFlags(), nil, noEnv)
			if err != nil || fmt.Sprintf("%q", cfg.Upstream.Addresses) != `["a:1" "b:2"]` {
				t.Fatalf("addresses = %q, %v", cfg.Upstream.Addresses, err)
			}
		})
	}
	t.Run("RESPGUARD_GUARD_REQUIRE_TTL=\"abc* def*\" is two patterns", func(t *testing.T) {
		t.Setenv("RESPGUARD_GUARD_REQUIRE_TTL", "abc* def*")
		_, cfg, err := load(newFlags(), nil, noEnv)
		if err != nil || fmt.Sprintf("%q", cfg.Guard.RequireTTL) != `["abc*" "def*"]` {
			t.Fatalf("require_ttl = %q, %v", cfg.Guard.RequireTTL, err)
		}
	})
	t.Run("a YAML string where the list goes is read as the environment's is", func(t *testing.T) {
		_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, "guard:\n  require_ttl: \"abc* def*\"\n")}, noEnv)
		if err != nil || fmt.Sprintf("%q", cfg.Guard.RequireTTL) != `["abc*" "def*"]` {
			t.Fatalf("require_ttl = %q, %v", cfg.Guard.RequireTTL, err)
		}
	})
	t.Run("an empty variable is an empty list", func(t *testing.T) {
		_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, "guard:\n  require_ttl: \"\"\n")}, noEnv)
		if err != nil || len(cfg.Guard.RequireTTL) != 0 {
			t.Fatalf("require_ttl = %q, %v", cfg.Guard.RequireTTL, err)
		}
	})
}

func TestAListItemWithWhitespaceIsRefusedNamingTheKey(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"a require_ttl pattern": {"guard:\n  require_ttl: [\"abc*\", \"def* ghi*\"]\n", "guard.require_ttl[1]: "},
		"a stream_maxlen pattern": {"guard:\n  stream_maxlen:\n    - {pattern: \"events:* logs:*\", maxlen: 1000}\n",
			"guard.stream_maxlen[0].pattern: "},
		"an upstream address": {"upstream:\n  mode: cluster\n  addresses: [\"a:1 b:2\"]\n", "upstream.addresses[0]: "},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, tc.body)}, noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "whitespace") {
				t.Fatalf("err = %v, want one containing %q and saying why", err, tc.want)
			}
		})
	}
}

func TestValuesOfTheWrongTypeAreRefusedNamingTheKey(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"pool.max_conns", "true", "want a whole number, got true"},
		{"guard.max_elements", "1.5", "want a whole number, got 1.5"},
		{"pool.max_conns", "1e3", "want a whole number"},
		{"client.max_multibulk_len", "2.0", "want a whole number"},
		{"guard.top_k", "[1]", "want a whole number"},
		{"guard.flush_async", "1", "want true or false, got 1"},
		{"admin.pprof", `"yes"`, `want true or false, got "yes"`},
		{"telemetry.traces.sample_ratio", "true", "want a number, got true"},
		{"log.level", "true", "want a string, got true"},
		{"client.idle_timeout", "true", "want a duration"},
		{"guard.stream_maxlen", "[{pattern: 'a*', maxlen: 1.5}]", "guard.stream_maxlen[0].maxlen: want a whole number"},
	} {
		t.Run(tc.key+": "+tc.value, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, nested(tc.key, tc.value))}, noEnv)
			want := tc.want
			if !strings.HasPrefix(want, tc.key) {
				want = tc.key + ": " + want
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
}

func TestEnvironmentValuesParseAsTheirKeysType(t *testing.T) {
	t.Run("a number in the file is read as a string where one goes", func(t *testing.T) {
		_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, "tls:\n  min_version: 1.2\n")}, noEnv)
		if err != nil || cfg.TLS.MinVersion != "1.2" {
			t.Fatalf("tls.min_version = %q, %v", cfg.TLS.MinVersion, err)
		}
	})
	t.Setenv("RESPGUARD_POOL_MAX_CONNS", "010") // decimal, not octal
	t.Setenv("RESPGUARD_GUARD_MAX_ELEMENTS", " 5000 ")
	t.Setenv("RESPGUARD_GUARD_FLUSH_ASYNC", "true")
	t.Setenv("RESPGUARD_TELEMETRY_TRACES_SAMPLE_RATIO", "0.5")
	t.Setenv("RESPGUARD_CLIENT_WRITE_TIMEOUT", "90s")
	t.Setenv("RESPGUARD_TLS_MIN_VERSION", "1.3")
	_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, "client:\n  max_pending: \"77\"\ntls:\n  min_version: 1.2\n")}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pool.MaxConns != 10 || cfg.Guard.MaxElements != 5000 || !cfg.Guard.FlushAsync || *cfg.Telemetry.Traces.SampleRatio != 0.5 ||
		cfg.Client.WriteTimeout != 90*time.Second || cfg.Client.MaxPending != 77 || cfg.TLS.MinVersion != "1.3" {
		t.Fatalf("cfg = %+v", cfg)
	}
	t.Run("a word is refused naming the variable", func(t *testing.T) {
		t.Setenv("RESPGUARD_GUARD_MAX_ELEMENTS", "many")
		_, _, err := load(newFlags(), nil, noEnv)
		if err == nil || !strings.Contains(err.Error(), "guard.max_elements (RESPGUARD_GUARD_MAX_ELEMENTS): want a whole number") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestANumberTooLargeIsCalledTooLarge(t *testing.T) {
	for _, value := range []string{"99999999999999999999", "18446744073709551615", "9223372036854775808"} {
		t.Run("client.max_clients: "+value, func(t *testing.T) {
			_, _, err := load(newFlags(), []string{"--config", writeConfig(t, nested("client.max_clients", value))}, noEnv)
			if err == nil || !strings.HasPrefix(err.Error(), "client.max_clients: ") || !strings.Contains(err.Error(), "too large") || strings.Contains(err.Error(), "negative") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv("RESPGUARD_CLIENT_MAX_CLIENTS", "99999999999999999999")
		_, _, err := load(newFlags(), nil, noEnv)
		if err == nil || !strings.Contains(err.Error(), "client.max_clients (RESPGUARD_CLIENT_MAX_CLIENTS): ") || !strings.Contains(err.Error(), "too large") {
			t.Fatalf("err = %v", err)
		}
	})
}
