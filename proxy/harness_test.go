package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// testProxy is a respguard Server in front of a real redis-server.
type testProxy struct {
	Addr   string
	Redis  *redistest.Server
	Server *Server
	Pool   *pool.Pool
}

// startProxy starts redis-server and a proxy in front of it. mutate may
// adjust the configs before start.
func startProxy(t testing.TB, mutate func(*Config, *pool.Config)) *testProxy {
	t.Helper()
	rs := redistest.Start(t)
	return startProxyFor(t, rs, mutate)
}

func startProxyFor(t testing.TB, rs *redistest.Server, mutate func(*Config, *pool.Config)) *testProxy {
	t.Helper()
	return startProxyWith(t, rs, mutate, Options{})
}

// startProxyWith is startProxyFor with the server's collaborators.
func startProxyWith(t testing.TB, rs *redistest.Server, mutate func(*Config, *pool.Config), opts Options) *testProxy {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0"}
	pcfg := pool.Config{Address: rs.Addr, RetryBackoff: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg, &pcfg)
	}
	p, err := pool.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := pool.NewControl(pcfg).Probe(ctx)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	srv, err := NewServer(cfg, p, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testProxy{Addr: serveForTest(t, srv, p.Close), Redis: rs, Server: srv, Pool: p}
}

// serveForTest serves srv on a loopback port until the test ends, then
// shuts it down (checking that it stops cleanly) and runs closeUpstream.
func serveForTest(t testing.TB, srv *Server, closeUpstream func()) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve returned %v", err)
		}
		closeUpstream()
	})
	return l.Addr().String()
}

// client returns a go-redis client of the proxy speaking proto (2 or 3).
func (tp *testProxy) client(t testing.TB, proto int, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: tp.Addr, Protocol: proto, DisableIdentity: true, MaxRetries: -1}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// direct returns a go-redis client of the redis-server itself.
func (tp *testProxy) direct(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain TCP connection for protocol-level tests.
type rawConn struct {
	net.Conn
	r *bufio.Reader
	t testing.TB
}

func (tp *testProxy) raw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", tp.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c), t: t}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one CRLF-terminated line, without the CRLF.
func (c *rawConn) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line: %v (got %q)", err, s)
	}
	if len(s) >= 2 && s[len(s)-2] == '\r' {
		return s[:len(s)-2]
	}
	return s[:len(s)-1]
}

// expectClosed asserts the server closes the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	b, err := c.r.ReadByte()
	if err == nil {
		c.t.Fatalf("expected close, read %q", b)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatal("expected close, but the connection stayed open")
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitRedisBlocked waits until Redis itself counts one blocked client (a
// blocking command sent through tp has reached it), polling one direct
// connection for up to 10 s.
func waitRedisBlocked(t testing.TB, tp *testProxy) {
	t.Helper()
	direct, ctx := tp.direct(t), ctxT(t)
	pollUntil(t, 10*time.Second, "a client blocked in Redis", func() bool {
		return strings.Contains(direct.Info(ctx, "clients").Val(), "blocked_clients:1")
	})
}

// goroutineRuns reports whether the stack of some goroutine of the test
// process contains every one of parts (its state, function names).
func goroutineRuns(parts ...string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(g, part)
		}
		if all {
			return true
		}
	}
	return false
}
