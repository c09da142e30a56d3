package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool/redistest"
)

// readAny reads one RESP2 or RESP3 reply and renders it as text.
func readAny(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 {
		return "", fmt.Errorf("short line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-', ':', '_', '#', ',':
		return line[:len(line)-2], nil
	case '$', '=':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return "$-1", err
		}
		b := make([]byte, n+2)
		_, err = io.ReadFull(r, b)
		return string(b[:n]), err
	case '*', '>', '~', '%':
		n, err := strconv.Atoi(body)
		if line[0] == '%' {
			n *= 2
		}
		parts := make([]string, 0, max(n, 0))
		for range max(n, 0) {
			s, err := readAny(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return string(line[0]) + "[" + strings.Join(parts, " ") + "]", err
	}
	return "", fmt.Errorf("unexpected reply line %q", line)
}

// subscriber is a raw client of addr logged in as user sub with proto.
func subscriber(t *testing.T, addr string, proto int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "HELLO %d AUTH sub pw\r\n", proto)
	if s, err := readAny(r); err != nil || strings.HasPrefix(s, "-") {
		t.Fatalf("HELLO: %s %v", s, err)
	}
	return c, r
}

// stillServed sends PING and reports whether a reply came back (a
// disconnected client reads EOF instead).
func stillServed(c net.Conn, r *bufio.Reader) bool {
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	_, err := readAny(r)
	return err == nil
}

// TestRevokedSubscriptionsDisconnectAsInRedis subscribes as user sub, then
// changes sub's channels: on Redis itself with ACL SETUSER, through
// respguard with a policy reload. Subscribers that may no longer hold a
// subscription (channel, pattern or shard channel) must be disconnected by
// both, the others kept by both, in RESP2 and RESP3.
func TestRevokedSubscriptionsDisconnectAsInRedis(t *testing.T) {
	rs := redistest.Start(t)
	rules := func(channels string) string { return "~* " + channels + " +@all" }
	const before = "resetchannels &news.* &shard.*"
	pol := func(channels string) *policy.Policy {
		return newPolicy(t, policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all", "sub": "on >pw " + rules(channels)}})
	}
	tp := startProxyWith(t, rs, nil, Options{Policy: pol(before)})
	admin := tp.direct(t)
	setUser := func(channels string) {
		args := append([]any{"ACL", "SETUSER", "sub", "reset", "on", ">pw"}, words(rules(channels))...)
		if err := admin.Do(ctxT(t), args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		commands []string // sent after HELLO; "|n": n replies, else one per channel
		after    string   // sub's channel rules after the change
		closed   bool
	}{
		{[]string{"SUBSCRIBE news.eu"}, "resetchannels &alerts", true},
		{[]string{"SUBSCRIBE news.eu"}, "resetchannels &news.eu", false},
		{[]string{"SUBSCRIBE news.eu"}, "allchannels", false},
		{[]string{"PSUBSCRIBE news.*"}, "resetchannels &news.eu", true},
		{[]string{"PSUBSCRIBE news.*"}, "resetchannels &news.* &x", false},
		{[]string{"SSUBSCRIBE shard.a"}, "resetchannels &news.*", true},
		{[]string{"SSUBSCRIBE shard.a"}, "resetchannels &shard.*", false},
		{[]string{"SUBSCRIBE news.eu news.us", "UNSUBSCRIBE news.us"}, "resetchannels &news.eu", false},
		{[]string{"SUBSCRIBE news.eu news.us", "UNSUBSCRIBE|2"}, "resetchannels &alerts", false},
		{[]string{"PSUBSCRIBE news.* shard.*", "PUNSUBSCRIBE news.*"}, "resetchannels &shard.*", false},
		{[]string{"SUBSCRIBE news.eu", "PSUBSCRIBE shard.*"}, "resetchannels &news.eu", true},
	}
	for _, proto := range []int{2, 3} {
		for _, tt := range cases {
			t.Run(fmt.Sprintf("RESP%d %s then %s", proto, strings.Join(tt.commands, ", "), tt.after), func(t *testing.T) {
				setUser(before)
				tp.Server.SetPolicy(pol(before))
				direct, directR := subscriber(t, rs.Addr, proto)
				proxied, proxiedR := subscriber(t, tp.Addr, proto)
				for _, command := range tt.commands {
					line, n, _ := strings.Cut(command, "|")
					replies, _ := strconv.Atoi(n)
					if n == "" {
						replies = len(strings.Fields(line)) - 1
					}
					for _, c := range []struct {
						conn net.Conn
						r    *bufio.Reader
					}{{direct, directR}, {proxied, proxiedR}} {
						fmt.Fprintf(c.conn, "%s\r\n", line)
						for range replies {
							if s, err := readAny(c.r); err != nil || strings.HasPrefix(s, "-") {
								t.Fatalf("%s: %s %v", line, s, err)
							}
						}
					}
				}
				setUser(tt.after)
				tp.Server.SetPolicy(pol(tt.after))
				redisKept, proxyKept := stillServed(direct, directR), stillServed(proxied, proxiedR)
				if redisKept != !tt.closed || proxyKept != redisKept {
					t.Fatalf("still served: Redis %v, respguard %v; want %v", redisKept, proxyKept, !tt.closed)
				}
			})
		}
	}
}

// TestAReloadDuringASubscribeIsEnforcedOnIt: a reload that comes once a
// SUBSCRIBE has been allowed, but before the subscription is recorded,
// finds nothing to revoke; the subscriber must still be disconnected, as
// one already subscribed is.
func TestAReloadDuringASubscribeIsEnforcedOnIt(t *testing.T) {
	pol := func(channels string) *policy.Policy {
		return newPolicy(t, policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all", "sub": "on >pw ~* resetchannels " + channels + " +@all"}})
	}
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: pol("&news.*")})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			tp.Server.SetPolicy(pol("&news.*"))
			c, r := subscriber(t, tp.Addr, proto)
			var once sync.Once
			reload := func(s *session) {
				if *s.userName.Load() == "sub" && s.lastCmd == "subscribe" {
					once.Do(func() { tp.Server.SetPolicy(pol("&alerts")) })
				}
			}
			tp.Server.afterCheck.Store(&reload)
			t.Cleanup(func() { tp.Server.afterCheck.Store(nil) })
			fmt.Fprintf(c, "SUBSCRIBE news.eu\r\n")
			if _, err := readAny(r); err != nil {
				return // disconnected even before its reply: as good
			}
			if stillServed(c, r) {
				t.Fatal("a subscriber to a channel the reload revoked is still served")
			}
		})
	}
}

// TestRuleChangeDuringMultiDiscardsTheTransaction: a read queued while
// allowed must not run at EXEC after a reload revoked the key; Redis fails
// that command inside EXEC, respguard discards the transaction. Neither
// returns the value. A WATCH and an unchanged user's transaction are kept.
func TestRuleChangeDuringMultiDiscardsTheTransaction(t *testing.T) {
	rs := redistest.Start(t)
	pol := func(keys string) *policy.Policy {
		return newPolicy(t, policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all", "sub": "on >pw " + keys + " +@all", "other": "on >pw ~* +@all"}})
	}
	tp := startProxyWith(t, rs, nil, Options{Policy: pol("~*")})
	admin := tp.direct(t)
	ctx := ctxT(t)
	admin.Set(ctx, "secret", "s3cret", 0)
	admin.Do(ctx, "ACL", "SETUSER", "sub", "on", ">pw", "~*", "+@all")
	admin.Do(ctx, "ACL", "SETUSER", "other", "on", ">pw", "~*", "+@all")
	for _, addr := range []string{rs.Addr, tp.Addr} {
		c, r := subscriber(t, addr, 2)
		o, or := subscriberAs(t, addr, "other")
		for _, line := range []string{"WATCH secret", "MULTI", "GET secret"} {
			fmt.Fprintf(c, "%s\r\n", line)
			fmt.Fprintf(o, "%s\r\n", line)
			for _, rd := range []*bufio.Reader{r, or} {
				if s, err := readAny(rd); err != nil || strings.HasPrefix(s, "-") {
					t.Fatalf("%s: %s %v", line, s, err)
				}
			}
		}
		admin.Do(ctx, "ACL", "SETUSER", "sub", "resetkeys", "~cache:*")
		tp.Server.SetPolicy(pol("~cache:*"))
		fmt.Fprintf(c, "EXEC\r\n")
		fmt.Fprintf(o, "EXEC\r\n")
		got, err := readAny(r)
		if err != nil || strings.Contains(got, "s3cret") || !strings.Contains(got, "NOPERM") && !strings.Contains(got, "EXECABORT") {
			t.Errorf("%s: EXEC after the key was revoked = %s %v", addr, got, err)
		}
		if got, err := readAny(or); err != nil || got != "*[s3cret]" {
			t.Errorf("%s: unchanged user's EXEC = %s %v", addr, got, err)
		}
		t.Logf("%s: %s", addr, got)
		admin.Do(ctx, "ACL", "SETUSER", "sub", "resetkeys", "~*")
		tp.Server.SetPolicy(pol("~*"))
	}
}

// subscriberAs is a raw RESP2 client of addr logged in as user with password pw.
func subscriberAs(t *testing.T, addr, user string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "AUTH %s pw\r\n", user)
	if s, err := readAny(r); err != nil || s != "+OK" {
		t.Fatalf("AUTH: %s %v", s, err)
	}
	return c, r
}
