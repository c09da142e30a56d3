package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// tlsProxy is a proxy in front of a TLS-only redis-server (which demands a
// client certificate), serving clients over TLS too.
type tlsProxy struct {
	*testProxy
	CA     *redistest.CA
	TLS    TLSConfig
	TLSAdr string
}

// startTLSProxy starts it; mutate may adjust the client-side TLS config
// (its files are already set) before the listener is built.
func startTLSProxy(t *testing.T, mutate func(*TLSConfig)) *tlsProxy {
	t.Helper()
	ca := redistest.NewCA(t)
	rs := redistest.StartTLS(t, ca, ca.Issue("redis"))
	upstreamCert := ca.Issue("respguard-upstream")
	tp := startProxyWith(t, rs, func(_ *Config, pc *pool.Config) {
		pc.TLS = ca.ClientConfig(upstreamCert)
	}, Options{})
	server := ca.Issue("respguard")
	tc := TLSConfig{CertFile: server.CertFile, KeyFile: server.KeyFile, HandshakeTimeout: 300 * time.Millisecond}
	if mutate != nil {
		mutate(&tc)
	}
	return &tlsProxy{testProxy: tp, CA: ca, TLS: tc, TLSAdr: serveTLS(t, tp.Server, tc)}
}

// serveTLS adds a TLS listener for cfg to srv and returns its address; the
// harness's Shutdown closes it.
func serveTLS(t *testing.T, srv *Server, cfg TLSConfig) string {
	t.Helper()
	sc, err := cfg.ServerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(NewTLSListener(l, sc, cfg.HandshakeTimeout, nil)) }()
	return l.Addr().String()
}

func (tp *tlsProxy) tlsClient(t *testing.T, cfg *tls.Config) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: tp.TLSAdr, TLSConfig: cfg, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// leafSerial handshakes with addr and returns the server certificate's serial.
func leafSerial(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestTLSEndToEnd(t *testing.T) {
	tp := startTLSProxy(t, nil)
	ctx := ctxT(t)
	t.Run("a go-redis client over TLS reaches a TLS-only redis-server through respguard", func(t *testing.T) {
		c := tp.tlsClient(t, tp.CA.ClientConfig(redistest.KeyPair{}))
		if err := c.Set(ctx, "tls-key", "over-tls", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := c.Get(ctx, "tls-key").Result(); err != nil || v != "over-tls" {
			t.Fatalf("GET = %q, %v", v, err)
		}
	})
	t.Run("the plaintext listener keeps working beside the TLS one", func(t *testing.T) {
		if v, err := tp.client(t, 2).Get(ctx, "tls-key").Result(); err != nil || v != "over-tls" {
			t.Fatalf("GET = %q, %v", v, err)
		}
	})
	t.Run("the upstream really demands a client certificate", func(t *testing.T) {
		pc := pool.Config{Address: tp.Redis.Addr, TLS: tp.CA.ClientConfig(redistest.KeyPair{}), DialTimeout: 2 * time.Second}
		if _, err := pool.NewControl(pc).Probe(ctx); err == nil {
			t.Fatal("probe without a client certificate succeeded")
		}
	})
	t.Run("a client that does not trust the CA is refused", func(t *testing.T) {
		c := tp.tlsClient(t, &tls.Config{ServerName: "127.0.0.1"})
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("PING succeeded with an untrusted certificate")
		}
	})
	t.Run("a client that stalls the handshake is closed after the handshake timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", tp.TLSAdr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, net.ErrClosed) {
			t.Fatalf("read = %v, want EOF or reset", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v; the handshake timeout is 300ms", d)
		}
	})
}

func TestTLSMinVersion(t *testing.T) {
	tp := startTLSProxy(t, func(c *TLSConfig) { c.MinVersion = "1.3" })
	cfg := tp.CA.ClientConfig(redistest.KeyPair{})
	cfg.MaxVersion = tls.VersionTLS12
	if err := tp.tlsClient(t, cfg).Ping(ctxT(t)).Err(); err == nil {
		t.Fatal("a TLS 1.2 client was accepted with tls.min_version 1.3")
	}
	if err := tp.tlsClient(t, tp.CA.ClientConfig(redistest.KeyPair{})).Ping(ctxT(t)).Err(); err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	tp := startTLSProxy(t, nil)
	mtls := tp.TLS
	mtls.ClientCAFile = tp.CA.CertFile
	addr := serveTLS(t, tp.Server, mtls)
	ctx := ctxT(t)
	dial := func(cfg *tls.Config) error {
		c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: cfg, DisableIdentity: true, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	t.Run("a client without a certificate is refused", func(t *testing.T) {
		if err := dial(tp.CA.ClientConfig(redistest.KeyPair{})); err == nil {
			t.Fatal("PING without a client certificate succeeded")
		}
	})
	t.Run("a client certificate from another CA is refused", func(t *testing.T) {
		other := redistest.NewCA(t)
		cfg := tp.CA.ClientConfig(redistest.KeyPair{})
		cfg.Certificates = other.ClientConfig(other.Issue("stranger")).Certificates
		if err := dial(cfg); err == nil {
			t.Fatal("PING with a foreign client certificate succeeded")
		}
	})
	t.Run("a client with a certificate from the CA is served", func(t *testing.T) {
		if err := dial(tp.CA.ClientConfig(tp.CA.Issue("app"))); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTLSCertificateRotation(t *testing.T) {
	tp := startTLSProxy(t, nil)
	ctx := ctxT(t)
	cfg := tp.CA.ClientConfig(redistest.KeyPair{})
	before := leafSerial(t, tp.TLSAdr, cfg)
	old := tp.tlsClient(t, cfg)
	if err := old.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rotated := tp.CA.IssueTo("respguard-rotated", tp.TLS.CertFile, tp.TLS.KeyFile)
	after := leafSerial(t, tp.TLSAdr, cfg)
	if after == before || after != rotated.Serial.String() {
		t.Fatalf("after rotation the server presents serial %s; before %s, new file %s", after, before, rotated.Serial)
	}
	if err := old.Ping(ctx).Err(); err != nil {
		t.Fatalf("a connection made before the rotation broke: %v", err)
	}
	t.Run("a broken rotation keeps the previous certificate", func(t *testing.T) {
		if err := writeFileAtomic(tp.TLS.KeyFile, []byte("not a key")); err != nil {
			t.Fatal(err)
		}
		if got := leafSerial(t, tp.TLSAdr, cfg); got != after {
			t.Fatalf("serial = %s, want the previous %s", got, after)
		}
	})
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lockedBuffer collects log output from concurrent sessions.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dialFrom opens a raw connection to addr from the local IP localIP.
func dialFrom(t *testing.T, addr, localIP string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", localIP, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c), t: t}
}

func TestAuthRateLimit(t *testing.T) {
	const secret, adminSecret = "correct-horse-battery", "admin-staple"
	pol, err := policy.New(policy.Config{Users: map[string]string{"default": "off",
		"app": "on >" + secret + " ~* +@all", "admin": "on >" + adminSecret + " ~* +@all"}}, policy.BuiltinCommands())
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: pol, Logger: log})
	tp.Server.SetAuthRateLimit(3)
	limited := "-" + AuthRateLimitedText
	auth := func(from, user, pass string) string {
		c := dialFrom(t, tp.Addr, from)
		defer c.Close()
		c.send("AUTH " + user + " " + pass + "\r\n")
		return c.line()
	}

	t.Run("a worker retrying a stale password does not lock out the workers that have the right one", func(t *testing.T) {
		stale := dialFrom(t, tp.Addr, "127.0.0.1") // every client of a sidecar comes from 127.0.0.1
		for i := range 20 {
			stale.send("AUTH app last-years-password\r\n")
			if got := stale.line(); !strings.HasPrefix(got, "-WRONGPASS") {
				t.Fatalf("retry %d: %q, want WRONGPASS", i+1, got)
			}
		}
		if got := auth("127.0.0.1", "app", secret); got != "+OK" {
			t.Fatalf("valid AUTH from the same address: %q", got)
		}
		stale.send("HELLO 3 AUTH app " + secret + "\r\n")
		if got := stale.line(); !strings.HasPrefix(got, "%") {
			t.Fatalf("valid HELLO AUTH on the failing connection: %q", got)
		}
	})
	t.Run("distinct guesses are limited per user and address", func(t *testing.T) {
		for _, guess := range []string{"guess-a", "guess-b"} { // with the stale one: 3, the burst
			if got := auth("127.0.0.1", "app", guess); !strings.HasPrefix(got, "-WRONGPASS") {
				t.Fatalf("%s: %q", guess, got)
			}
		}
		for _, guess := range []string{"guess-c", secret} { // the next would wait 20 s: more than respguard holds one
			if got := auth("127.0.0.1", "app", guess); got != limited {
				t.Fatalf("%s over the limit: %q, want %q", guess, got, limited)
			}
		}
		if got := auth("127.0.0.1", "admin", adminSecret); got != "+OK" {
			t.Fatalf("another user from the same address: %q", got)
		}
		if got := auth("127.0.0.2", "app", secret); got != "+OK" {
			t.Fatalf("the same user from another address: %q", got)
		}
	})
	t.Run("failures are counted; guesses logged, retries and refusals not each; never a password", func(t *testing.T) {
		if n := tp.Server.AuthFailures(); n != 20+2+2 {
			t.Fatalf("AuthFailures = %d, want 24 (20 retries, 2 guesses, 2 refusals)", n)
		}
		out := logs.String()
		if strings.Count(out, "authentication rate limited") != 1 || strings.Count(out, "authentication failed") != 3 {
			t.Fatalf("log:\n%s", out)
		}
		for _, pass := range []string{secret, "guess-", "last-years"} {
			if strings.Contains(out, pass) {
				t.Fatalf("a password reached the log:\n%s", out)
			}
		}
	})
	t.Run("a limit of 0 turns limiting off", func(t *testing.T) {
		tp.Server.SetAuthRateLimit(0)
		if got := auth("127.0.0.1", "app", secret); got != "+OK" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("over the burst a new password waits for its turn instead of being refused", func(t *testing.T) {
		tp.Server.SetAuthRateLimit(120) // one attempt back every 500 ms
		start := time.Now()             // the 121st attempt cannot be checked before start+500ms
		for i := range 120 {
			if got := auth("127.0.0.3", "app", fmt.Sprint("guess-", i)); !strings.HasPrefix(got, "-WRONGPASS") {
				t.Fatalf("guess %d: %q", i, got)
			}
		}
		if got := auth("127.0.0.3", "app", secret); got != "+OK" {
			t.Fatalf("valid AUTH after the burst: %q", got)
		}
		if d := time.Since(start); d < 490*time.Millisecond {
			t.Fatalf("burst and AUTH answered within %s; want the AUTH held until the next attempt (500 ms after the first)", d)
		}
	})
}
