package proxy

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/proxy/resp"
)

// hostileArgs are commands whose arguments respguard or Redis quote in an
// error reply, each carrying CR, LF or NUL bytes that would forge replies if
// copied raw.
var hostileArgs = [][]string{
	{"FOO\r\n+X", "a\r\n:1\r\n", string(bytes.Repeat([]byte("x"), 200))}, // unknown command, long args
	{"NOSUCH\r\n", "\r\n$3\r\nabc"},
	{"FOO\x00bar", "a\x00b\r\n"},       // C's %s stops at NUL
	{"HELLO", "3", "x\r\n+PWNED"},      // HELLO option
	{"HELLO", "2", "AUTH\r\n-ERR", ""}, // HELLO option, not a valid AUTH
	{"ACL", "CAT", "a\r\nb"},           // unknown category
	{"ACL", "DRYRUN", "u\r\nx", "get"}, // unknown user
	{"ACL", "SETUSER\r\n", "x"},        // unknown ACL subcommand (Redis answers)
	{"CONFIG", "x\r\n+OK\r\n"},         // unknown subcommand (Redis answers)
}

// dialFor connects to addr (a proxy, or Redis itself) for the rest of the
// test, with a deadline on every read and write.
func dialFor(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// exchange sends cmds then PING on a fresh connection to addr and returns
// every byte received up to and including PING's reply.
func exchange(t *testing.T, addr string, cmds [][]string) []byte {
	t.Helper()
	c := dialFor(t, addr)
	var req []byte
	for _, cmd := range cmds {
		req = resp.AppendCommandStrings(req, cmd...)
	}
	req = resp.AppendCommandStrings(req, "PING", "in-sync")
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	end := []byte("$7\r\nin-sync\r\n")
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.HasSuffix(got, end) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
	}
	return got
}

// errorLines checks that reply holds exactly n one-line error replies
// followed by PING's reply, and returns those lines.
func errorLines(t *testing.T, reply []byte, n int) []string {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(reply, []byte("$7\r\nin-sync\r\n")), []byte("\r\n"))
	lines = lines[:len(lines)-1] // after the last CRLF
	if len(lines) != n {
		t.Fatalf("got %d reply lines, want %d one-line errors: %q", len(lines), n, reply)
	}
	out := make([]string, n)
	for i, l := range lines {
		if len(l) == 0 || l[0] != '-' || bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("reply %d is not a one-line error: %q", i, l)
		}
		out[i] = string(l)
	}
	return out
}

func TestErrorRepliesNeverEchoLineBreaks(t *testing.T) {
	t.Run("respguard's errors quoting client bytes equal Redis's and the next reply is the right one", func(t *testing.T) {
		tp := startProxy(t, nil)
		got := exchange(t, tp.Addr, hostileArgs)
		want := exchange(t, tp.Redis.Addr, hostileArgs)
		errorLines(t, got, len(hostileArgs))
		if !bytes.Equal(got, want) {
			t.Fatalf("through respguard:\n%q\ndirect:\n%q", got, want)
		}
	})
	t.Run("a renamed-away command and a denied subcommand are quoted on one line", func(t *testing.T) {
		tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: appPolicy(t, "")})
		cmds := [][]string{
			{"AUTH", "appuser", "S3cret-pass"},
			{"FLUSHALL", "x\r\n+OK\r\n"},
			{"OBJECT", "a\r\n+OK"},
			{"GET", "secret:1\r\n"},
		}
		reply := exchange(t, tp.Addr, cmds)
		if !bytes.HasPrefix(reply, []byte("+OK\r\n")) {
			t.Fatalf("AUTH: %q", reply)
		}
		lines := errorLines(t, reply[len("+OK\r\n"):], 3)
		want := []string{
			"-ERR unknown command 'FLUSHALL', with args beginning with: 'x  +OK  ' ",
			"-NOPERM this user has no permissions to run the 'object|a  +ok' command",
			"-NOPERM this user has no permissions to access one of the keys used as arguments",
		}
		for i := range want {
			if lines[i] != want[i] {
				t.Errorf("reply %d = %q, want %q", i, lines[i], want[i])
			}
		}
	})
}
