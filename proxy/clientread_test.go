package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

const testIdleTimeout = 300 * time.Millisecond

func TestClientIdleTimeout(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *pool.Config) { c.Client.IdleTimeout = testIdleTimeout })
	ca := redistest.NewCA(t)
	cert := ca.Issue("respguard")
	tlsAddr := serveTLS(t, tp.Server, TLSConfig{CertFile: cert.CertFile, KeyFile: cert.KeyFile})
	dials := []struct {
		name string
		dial func(t *testing.T) net.Conn
	}{
		{"plain TCP", func(t *testing.T) net.Conn { return tp.raw(t).Conn }},
		{"TLS", func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, ca.ClientConfig(redistest.KeyPair{}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}},
	}
	for _, d := range dials {
		t.Run("over "+d.name+", a client active for longer than the timeout stays; once idle for it, it is closed", func(t *testing.T) {
			c := idleTestConn{d.dial(t), t}
			start := time.Now()
			for time.Since(start) < 3*testIdleTimeout {
				c.ping()
				time.Sleep(testIdleTimeout / 4) // the client's pace, not synchronization
			}
			sent := c.ping()
			c.expectClosedWithin(sent, testIdleTimeout, 2*time.Second)
		})
		t.Run("over "+d.name+", a client blocked for longer than the timeout is not closed", func(t *testing.T) {
			c := idleTestConn{d.dial(t), t}
			c.send("*3\r\n$5\r\nBLPOP\r\n$12\r\nidle:no-such\r\n$1\r\n1\r\n") // 1 s: over three timeouts
			c.expect("*-1\r\n")
			sent := c.ping()
			c.expectClosedWithin(sent, testIdleTimeout, 2*time.Second)
		})
	}
}

// idleTestConn is a client connection speaking raw RESP.
type idleTestConn struct {
	net.Conn
	t *testing.T
}

func (c idleTestConn) send(s string) {
	c.t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads exactly want.
func (c idleTestConn) expect(want string) {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
		c.t.Fatalf("read %q, %v; want %q", buf, err, want)
	}
}

// ping sends PING and reads its reply; it returns when PING was sent.
func (c idleTestConn) ping() time.Time {
	c.t.Helper()
	sent := time.Now()
	c.send("*1\r\n$4\r\nPING\r\n")
	c.expect("+PONG\r\n")
	return sent
}

// expectClosedWithin asserts that the server closes the connection no
// sooner than timeout after since, and within timeout+slack.
func (c idleTestConn) expectClosedWithin(since time.Time, timeout, slack time.Duration) {
	c.t.Helper()
	_ = c.SetReadDeadline(since.Add(timeout + slack))
	n, err := c.Read(make([]byte, 1))
	took := time.Since(since)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("still open %v after the last command; the idle timeout is %v", took, timeout)
	case err == nil:
		c.t.Fatalf("read %d bytes, want the connection closed", n)
	case took < timeout:
		c.t.Fatalf("closed %v after the last command; the idle timeout is %v", took, timeout)
	}
}

// BenchmarkPublish is what a session pays after each command to keep
// CLIENT LIST's view of it current.
func BenchmarkPublish(b *testing.B) {
	s := &session{proto: 2, lastCmd: "get"}
	s.view.lastAt.Store(time.Now().UnixNano())
	b.ReportAllocs()
	for b.Loop() {
		s.publish()
	}
}
