// Package deploy_test checks that the deployment files in deploy/ (Kubernetes
// manifests, compose stack, example configs, systemd unit, scripts) agree with
// each other and with respguard's configuration keys and defaults.
package deploy_test

import (
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// respguard's defaults that the deployment files rely on.
const (
	defaultListenPort = 6380
	defaultAdminPort  = 9180
	healthPath        = "/healthz"
	readyPath         = "/readyz"
	containerConfig   = "/etc/respguard/respguard.yaml"
)

// configKeys are respguard's configuration keys as of issue 2 and 7. Keep this
// list in step with cmd/respguard: it is the one place the deploy tests learn
// which keys (and so which RESPGUARD_* variables) exist without building
// respguard. TestConfigsLoad checks the files against the real binary's keys.
var configKeys = []string{
	"admin.listen",
	"admin.pprof",
	"client.idle_timeout",
	"client.max_bulk_len",
	"client.max_clients",
	"client.max_inline_size",
	"client.max_multibulk_len",
	"client.max_pending",
	"client.output_buffer_limit",
	"client.output_buffer_soft_limit",
	"client.output_buffer_soft_time",
	"client.park_after",
	"client.query_buffer_limit",
	"client.write_timeout",
	"guard.flush_async",
	"guard.max_elements",
	"guard.oversize",
	"guard.require_ttl",
	"guard.size_cache_ttl",
	"guard.stream_maxlen",
	"guard.top_k",
	"guard.unlink.min_bytes",
	"guard.unlink.min_elements",
	"guard.unlink.mode",
	"listen",
	"log.format",
	"log.level",
	"policy.default_rules",
	"policy.mode",
	"policy.password_files", // map: user -> file
	"policy.rename",         // map: command -> new name
	"policy.script_identity",
	"policy.script_password_files", // map: user -> file
	"policy.script_users",          // map: user -> Redis user
	"policy.users",                 // map: user -> Redis ACL rule string
	"pool.acquire_timeout",
	"pool.idle_timeout",
	"pool.max_conns",
	"pool.min_idle_conns",
	"pool.retry_backoff",
	"pool.shared_conns",
	"security.auth_rate_limit",
	"security.protected_mode",
	"sched_policy",
	"shutdown_timeout",
	"telemetry.key_labels",
	"telemetry.scrape_interval",
	"telemetry.slowlog.max_len",
	"telemetry.slowlog.threshold",
	"telemetry.traces.endpoint",
	"telemetry.traces.exporter",
	"telemetry.traces.sample_ratio",
	"telemetry.traces.service_name",
	"telemetry.traces.slow_threshold",
	"telemetry.traces.statement",
	"tls.cert_file",
	"tls.client_ca_file",
	"tls.handshake_timeout",
	"tls.key_file",
	"tls.listen",
	"tls.min_version",
	"upstream.address",
	"upstream.addresses",
	"upstream.mode",
	"upstream.read_from",
	"upstream.refresh_interval",
	"upstream.sentinel.dial_timeout",
	"upstream.sentinel.master_name",
	"upstream.sentinel.password",
	"upstream.sentinel.tls",
	"upstream.sentinel.username",
	"upstream.dial_timeout",
	"upstream.password",
	"upstream.password_file",
	"upstream.tls.ca_file",
	"upstream.tls.cert_file",
	"upstream.tls.enabled",
	"upstream.tls.insecure_skip_verify",
	"upstream.tls.key_file",
	"upstream.tls.server_name",
	"upstream.username",
}

// mapKeys hold maps whose keys are user data (user names, commands), not config keys.
var mapKeys = []string{"policy.users", "policy.password_files", "policy.rename"}

// openPrefixes are sections whose exact keys are not settled yet.
var openPrefixes = []string{"guard."}

func knownKey(key string) bool {
	if slices.Contains(configKeys, key) {
		return true
	}
	for _, p := range openPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// envName is the environment variable for a config key: RESPGUARD_ + the key
// upper-cased with "." replaced by "_".
func envName(key string) string {
	return "RESPGUARD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// keyForEnv returns the config key an environment variable sets, if any.
func keyForEnv(name string) (string, bool) {
	for _, k := range configKeys {
		if envName(k) == name {
			return k, true
		}
	}
	for _, p := range openPrefixes {
		if strings.HasPrefix(name, envName(p)) {
			return strings.ToLower(strings.TrimPrefix(name, "RESPGUARD_")), true
		}
	}
	return "", false
}

// checkEnvName fails unless name is a RESPGUARD_* variable for a known key,
// an OpenTelemetry SDK variable, or a Go runtime variable.
func checkEnvName(t *testing.T, where, name string) {
	t.Helper()
	switch {
	case name == "RESPGUARD_CONFIG": // the --config flag
	case strings.HasPrefix(name, "RESPGUARD_"):
		if _, ok := keyForEnv(name); !ok {
			t.Errorf("%s: %s sets no known config key", where, name)
		}
	case strings.HasPrefix(name, "OTEL_"), name == "GOMEMLIMIT", name == "GOMAXPROCS", name == "GOGC":
	default:
		t.Errorf("%s: respguard does not read environment variable %s", where, name)
	}
}

// flatConfig is a respguard YAML config flattened to dotted keys.
type flatConfig map[string]any

// loadConfig parses a respguard config document and fails the test on any key
// respguard does not know.
func loadConfig(t *testing.T, where string, data []byte) flatConfig {
	t.Helper()
	flat := parseConfig(t, where, data)
	var unknown []string
	for k := range flat {
		if !knownKey(k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		t.Errorf("%s: unknown config key %q", where, k)
	}
	return flat
}

// parseConfig parses a respguard config document into dotted keys.
func parseConfig(t *testing.T, where string, data []byte) flatConfig {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	flat := flatConfig{}
	flatten("", doc, flat)
	return flat
}

func flatten(prefix string, m map[string]any, out flatConfig) {
	for k, v := range m {
		key := prefix + k
		if sub, ok := v.(map[string]any); ok && !slices.Contains(mapKeys, key) {
			flatten(key+".", sub, out)
			continue
		}
		out[key] = v
	}
}

// str returns key's string value, or def when the key is unset.
func (c flatConfig) str(key, def string) string {
	if v, ok := c[key]; ok {
		return fmt.Sprint(v)
	}
	return def
}

// hostPort splits a listen address and fails the test if it is not host:port.
func hostPort(t *testing.T, where, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s: address %q: port is not a number", where, addr)
	}
	return host, n
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExampleConfigUsesKnownKeysAndDefaults(t *testing.T) {
	cfg := loadConfig(t, "respguard.example.yaml", readFile(t, "respguard.example.yaml"))
	want := map[string]string{
		"listen":                "127.0.0.1:6380",
		"upstream.address":      "127.0.0.1:6379",
		"admin.listen":          "127.0.0.1:9180",
		"upstream.dial_timeout": "5s",
		"pool.max_conns":        "64",
		"pool.min_idle_conns":   "0",
		"pool.idle_timeout":     "5m",
		"pool.shared_conns":     "1",
		"client.max_clients":    "10000",
	}
	for key, v := range want {
		if got := cfg.str(key, "<unset>"); got != v {
			t.Errorf("respguard.example.yaml: %s = %s, want the default %s", key, got, v)
		}
	}
}

func TestContainerConfigListensOnAllInterfaces(t *testing.T) {
	cfg := loadConfig(t, "container/respguard.yaml", readFile(t, "container/respguard.yaml"))
	for key, port := range map[string]int{"listen": defaultListenPort, "admin.listen": defaultAdminPort} {
		host, p := hostPort(t, key, cfg.str(key, ""))
		if isLoopback(host) || p != port {
			t.Errorf("container/respguard.yaml: %s = %s, want 0.0.0.0:%d (published from the container)", key, cfg.str(key, ""), port)
		}
	}
}

func TestEnvNamesFollowTheKeys(t *testing.T) {
	for key, env := range map[string]string{
		"listen":             "RESPGUARD_LISTEN",
		"upstream.address":   "RESPGUARD_UPSTREAM_ADDRESS",
		"admin.listen":       "RESPGUARD_ADMIN_LISTEN",
		"client.max_clients": "RESPGUARD_CLIENT_MAX_CLIENTS",
	} {
		if got := envName(key); got != env {
			t.Errorf("envName(%q) = %s, want %s", key, got, env)
		}
	}
}
