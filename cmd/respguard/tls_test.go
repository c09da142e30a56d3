package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/proxy"
)

func TestSecurityConfigKeys(t *testing.T) {
	t.Run("defaults: TLS off, protected mode on, 10 failed AUTHs a minute", func(t *testing.T) {
		_, cfg, err := load(newFlags(), nil, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS.Enabled() || cfg.TLS.MinVersion != "1.2" || cfg.TLS.HandshakeTimeout != proxy.DefaultHandshakeTimeout ||
			cfg.Upstream.TLS.Enabled || !cfg.Security.ProtectedMode || cfg.Security.AuthRateLimit != 10 {
			t.Fatalf("cfg = %+v %+v %+v", cfg.TLS, cfg.Upstream.TLS, cfg.Security)
		}
	})
	t.Run("every key is read from the file and from RESPGUARD_* variables", func(t *testing.T) {
		path := writeConfig(t, `tls:
  cert_file: /c.pem
  key_file: /k.pem
  client_ca_file: /ca.pem
  min_version: "1.3"
  listen: 127.0.0.1:6443
  handshake_timeout: 3s
upstream:
  tls:
    enabled: true
    ca_file: /uca.pem
    server_name: redis.internal
    cert_file: /uc.pem
    key_file: /uk.pem
    insecure_skip_verify: true
security:
  protected_mode: false
`)
		t.Setenv("RESPGUARD_SECURITY_AUTH_RATE_LIMIT", "4")
		t.Setenv("RESPGUARD_TLS_MIN_VERSION", "1.2")
		t.Setenv("RESPGUARD_UPSTREAM_TLS_SERVER_NAME", "redis.env")
		_, cfg, err := load(newFlags(), []string{"--config", path}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		want := proxy.TLSConfig{CertFile: "/c.pem", KeyFile: "/k.pem", ClientCAFile: "/ca.pem", MinVersion: "1.2", Listen: "127.0.0.1:6443", HandshakeTimeout: 3 * time.Second}
		wantUp := UpstreamTLSConfig{Enabled: true, CAFile: "/uca.pem", ServerName: "redis.env", CertFile: "/uc.pem", KeyFile: "/uk.pem", InsecureSkipVerify: true}
		if cfg.TLS != want || cfg.Upstream.TLS != wantUp || cfg.Security != (SecurityConfig{ProtectedMode: false, AuthRateLimit: 4}) {
			t.Fatalf("cfg = %+v %+v %+v", cfg.TLS, cfg.Upstream.TLS, cfg.Security)
		}
	})
}

func TestSecurityConfigRefusesBadInput(t *testing.T) {
	cases := map[string]badConfig{
		"a certificate without its key":        {"tls:\n  cert_file: /c.pem\n", "tls.key_file"},
		"a client CA without a certificate":    {"tls:\n  client_ca_file: /ca.pem\n", "tls.client_ca_file"},
		"a TLS address without a certificate":  {"tls:\n  listen: 127.0.0.1:6443\n", "tls.listen"},
		"the TLS address equal to listen":      {"listen: 127.0.0.1:7000\ntls:\n  cert_file: /c\n  key_file: /k\n  listen: 127.0.0.1:7000\n", "tls.listen"},
		"an unsupported TLS version":           {"tls:\n  min_version: \"1.1\"\n", "tls.min_version"},
		"upstream TLS options while it is off": {"upstream:\n  tls:\n    ca_file: /ca.pem\n", "upstream.tls.enabled"},
		"an upstream client cert without key":  {"upstream:\n  tls:\n    enabled: true\n    cert_file: /c\n", "upstream.tls.key_file"},
		"a negative AUTH rate limit":           {"security:\n  auth_rate_limit: -1\n", "security.auth_rate_limit"},
		"an unknown security key":              {"security:\n  protectedmode: false\n", "protectedmode"},
	}
	expectRefused(t, cases)
}

// serveInProcess runs serve for the YAML config body until the test ends,
// returning its log.
func serveInProcess(t *testing.T, body string) *syncBuffer {
	t.Helper()
	_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, body)}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, func() (Config, error) { return cfg, nil }, "") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	})
	return &logs
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	poll(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "respguard listening on "+addr)
}

func TestServeTLSBothSides(t *testing.T) {
	ca := redistest.NewCA(t)
	rs := redistest.StartTLS(t, ca, ca.Issue("redis"))
	up, server := ca.Issue("respguard-upstream"), ca.Issue("respguard")
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	tlsListen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	logs := serveInProcess(t, fmt.Sprintf(`listen: %s
admin:
  listen: "off"
tls:
  cert_file: %s
  key_file: %s
  listen: %s
upstream:
  address: %s
  tls:
    enabled: true
    ca_file: %s
    cert_file: %s
    key_file: %s
`, listen, server.CertFile, server.KeyFile, tlsListen, rs.Addr, ca.CertFile, up.CertFile, up.KeyFile))
	waitListening(t, tlsListen)
	ctx := ctxTest(t)
	t.Run("go-redis over TLS, through upstream TLS with a client certificate", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: tlsListen, TLSConfig: ca.ClientConfig(redistest.KeyPair{}), DisableIdentity: true})
		defer c.Close()
		if err := c.Set(ctx, "k", "from-go-redis", 0).Err(); err != nil {
			t.Fatalf("SET: %v\n%s", err, logs.String())
		}
	})
	t.Run("redis-cli --tls", func(t *testing.T) {
		if _, err := exec.LookPath("redis-cli"); err != nil {
			t.Skip("redis-cli not installed")
		}
		host, port, _ := net.SplitHostPort(tlsListen)
		out, err := exec.Command("redis-cli", "--tls", "--cacert", ca.CertFile, "-h", host, "-p", port, "GET", "k").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "from-go-redis" {
			t.Fatalf("redis-cli: %q, %v", out, err)
		}
	})
	t.Run("listen stays plaintext when tls.listen is set", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true})
		defer c.Close()
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "from-go-redis" {
			t.Fatalf("GET = %q, %v", v, err)
		}
	})
}

func TestServeTLSOnListenItself(t *testing.T) {
	ca := redistest.NewCA(t)
	rs := redistest.Start(t)
	server := ca.Issue("respguard")
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	serveInProcess(t, fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\ntls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\nupstream:\n  address: %s\n",
		listen, server.CertFile, server.KeyFile, ca.CertFile, rs.Addr))
	waitListening(t, listen)
	ctx := ctxTest(t)
	ping := func(cfg *redis.Options) error {
		c := redis.NewClient(cfg)
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	if err := ping(&redis.Options{Addr: listen, DisableIdentity: true, MaxRetries: -1}); err == nil {
		t.Fatal("a plaintext client was served on a TLS listen address")
	}
	if err := ping(&redis.Options{Addr: listen, TLSConfig: ca.ClientConfig(redistest.KeyPair{}), DisableIdentity: true, MaxRetries: -1}); err == nil {
		t.Fatal("mutual TLS: a client without a certificate was served")
	}
	if err := ping(&redis.Options{Addr: listen, TLSConfig: ca.ClientConfig(ca.Issue("app")), DisableIdentity: true}); err != nil {
		t.Fatalf("mutual TLS with a client certificate: %v", err)
	}
}

func TestProtectedMode(t *testing.T) {
	rs := redistest.Start(t)
	public := func() string { return fmt.Sprintf("0.0.0.0:%d", redistest.FreePort(t)) }
	startErr := func(body string) error {
		_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, body)}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		log := slog.New(slog.DiscardHandler)
		return serve(ctx, cfg, log, func() (Config, error) { return cfg, nil }, "")
	}
	t.Run("a public address without authentication is refused, saying why and how to fix it", func(t *testing.T) {
		var err error
		for range 5 { // a free port can be taken by another test process before we bind it
			err = startErr(fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\nupstream:\n  address: %s\n", public(), rs.Addr))
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				break
			}
		}
		if !errors.Is(err, ErrProtectedMode) {
			t.Fatalf("err = %v, want protected mode", err)
		}
		for _, want := range []string{"not a loopback address", "no authentication", "policy.users", "127.0.0.1", "tls.client_ca_file", "security.protected_mode: false"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q:\n%s", want, err)
			}
		}
	})
	t.Run("the override serves anyway", func(t *testing.T) {
		addr := public()
		serveInProcess(t, fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\nupstream:\n  address: %s\nsecurity:\n  protected_mode: false\n", addr, rs.Addr))
		_, port, _ := net.SplitHostPort(addr)
		waitListening(t, "127.0.0.1:"+port)
	})
	t.Run("a public address with passwords is served", func(t *testing.T) {
		addr := public()
		serveInProcess(t, fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\nupstream:\n  address: %s\npolicy:\n  users:\n    default: \"off\"\n    app: \"on >pw ~* +@all\"\n", addr, rs.Addr))
		_, port, _ := net.SplitHostPort(addr)
		waitListening(t, "127.0.0.1:"+port)
	})
}

func TestPrintConfigShowsNoKeyMaterial(t *testing.T) {
	ca := redistest.NewCA(t)
	kp := ca.Issue("respguard")
	path := writeConfig(t, fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\nupstream:\n  password: hunter2\n  tls:\n    enabled: true\n    cert_file: %s\n    key_file: %s\n",
		kp.CertFile, kp.KeyFile, kp.CertFile, kp.KeyFile))
	v, cfg, err := load(newFlags(), []string{"--config", path}, noEnv)
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
	if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), kp.KeyFile) {
		t.Fatalf("print-config output:\n%s", b)
	}
}

func ctxTest(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
