package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
	tidwall "github.com/tidwall/resp"
)

// rawExchange sends in on a fresh connection and returns what Redis answers
// within 2 s, and whether it closed the connection.
func rawExchange(t *testing.T, addr string, in []byte) (reply string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	// Redis closes the connection after a protocol error, which ends the
	// read at once; the deadline only bounds the cases where it keeps the
	// connection open (the subtests wait in parallel), and is long enough
	// that a busy machine cannot turn a slow close into "kept open".
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(got), false
	}
	return string(got), true
}

func TestRedisAgreesOnProtocolErrors(t *testing.T) {
	srv := redistest.Start(t)
	for _, c := range protocolErrorCases {
		if c.lim != (Limits{}) && c.redis == "" {
			continue // a respguard-only limit with no Redis counterpart to compare
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reply, closed := rawExchange(t, srv.Addr, []byte(c.in))
			if c.redis != "" {
				// A known difference: prove Redis still does what the table says.
				want := c.redis
				if want == "(no reply)" {
					want = ""
				}
				if reply != want {
					t.Fatalf("Redis now replies %q, table says %q: update the table", reply, c.redis)
				}
				t.Logf("differs from Redis: we reply %q, Redis replies %q", c.err, c.redis)
				return
			}
			if want := "-" + c.err + "\r\n"; reply != want || !closed {
				t.Fatalf("Redis replied %q (closed %v), we reply %q", reply, closed, want)
			}
		})
	}
}

func TestRedisAgreesOnInlineSplitting(t *testing.T) {
	srv := redistest.Start(t)
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := tidwall.NewReader(bufio.NewReader(conn))
	for i, c := range inlineCases {
		if len(c.want) != 1 || strings.Count(c.in, "\n") != 1 || strings.IndexByte(c.in, 0) >= 0 || c.lim != (Limits{}) {
			continue // one line each; Redis never completes a line with a NUL (strchr stops at it)
		}
		t.Run(c.name, func(t *testing.T) {
			// RPUSH stores every argument Redis split from the line; LRANGE
			// gives them back to compare with ours.
			key := fmt.Sprintf("inline:%d", i)
			line := strings.TrimLeft(c.in, " \t")
			fmt.Fprintf(conn, "RPUSH %s %s", key, line)
			fmt.Fprintf(conn, "LRANGE %s 0 -1\r\n", key)
			if v, _, err := rd.ReadValue(); err != nil || v.Type() != ':' {
				t.Fatalf("RPUSH: %v %v", v, err)
			}
			v, _, err := rd.ReadValue()
			if err != nil {
				t.Fatal(err)
			}
			var redis []string
			for _, e := range v.Array() {
				redis = append(redis, e.String())
			}
			if want := c.want[0]; !equalStrings(redis, want) {
				t.Fatalf("Redis split %q into %q, we into %q", c.in, redis, want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// realReplyCommands exercise every reply shape Redis 7.0 produces. With
// DEBUG PROTOCOL, RESP3 adds attributes, pushes, verbatim strings, big
// numbers, doubles and booleans.
var realReplyCommands = [][]string{
	{"SET", "s", "0123456789abcdef"}, {"GET", "s"}, {"GET", "missing"}, {"INCR", "n"},
	{"RPUSH", "l", "a", "", "c"}, {"LRANGE", "l", "0", "-1"}, {"LRANGE", "missing", "0", "-1"},
	{"HSET", "h", "f1", "v1", "f2", "v2"}, {"HGETALL", "h"}, {"SADD", "set", "x", "y"}, {"SMEMBERS", "set"},
	{"ZADD", "z", "1.5", "m"}, {"ZSCORE", "z", "m"}, {"ZRANGE", "z", "0", "-1", "WITHSCORES"},
	{"NOSUCHCOMMAND"}, {"SET", "big", strings.Repeat("v", 300<<10)}, {"GET", "big"},
	{"XADD", "st", "1-1", "f", "v"}, {"XRANGE", "st", "-", "+"}, {"CONFIG", "GET", "maxmemory*"},
	{"EXISTS", "s", "missing"}, {"BLPOP", "nolist", "0.01"}, {"CLIENT", "INFO"}, {"COMMAND", "INFO", "GET"},
	{"DEBUG", "PROTOCOL", "string"}, {"DEBUG", "PROTOCOL", "integer"}, {"DEBUG", "PROTOCOL", "double"},
	{"DEBUG", "PROTOCOL", "bignum"}, {"DEBUG", "PROTOCOL", "null"}, {"DEBUG", "PROTOCOL", "array"},
	{"DEBUG", "PROTOCOL", "set"}, {"DEBUG", "PROTOCOL", "map"}, {"DEBUG", "PROTOCOL", "attrib"},
	{"DEBUG", "PROTOCOL", "push"}, {"DEBUG", "PROTOCOL", "verbatim"}, {"DEBUG", "PROTOCOL", "true"},
	{"DEBUG", "PROTOCOL", "false"}, {"PING"},
}

func TestReplyReaderFramesRealRedisReplies(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d: a pipeline of N commands gives N replies that end where the next begins", proto), func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var out []byte
			if proto == 3 {
				out = AppendCommandStrings(out, "HELLO", "3")
			}
			for _, c := range realReplyCommands {
				out = AppendCommandStrings(out, c...)
			}
			go func() { _, _ = conn.Write(out) }()
			rr := NewReplyReader(conn)
			var types []byte
			if proto == 3 {
				readRealReply(t, rr, "HELLO")
			}
			for _, c := range realReplyCommands {
				what := strings.Join(c[:min(3, len(c))], " ")
				reply := readRealReply(t, rr, what)
				types = append(types, reply[0])
				if reply[0] == '>' {
					// DEBUG PROTOCOL push sends a push, then the command's own reply.
					reply = readRealReply(t, rr, what)
					types = append(types, reply[0])
				}
				if proto == 2 && reply[0] != '>' {
					// tidwall/resp knows RESP2: it must consume exactly our reply.
					if _, n, err := tidwall.NewReader(bytes.NewReader(reply)).ReadValue(); err != nil || n != len(reply) {
						t.Errorf("%s: tidwall read %d of %d bytes: %v", c[0], n, len(reply), err)
					}
				}
			}
			if rr.Buffered() != 0 {
				t.Fatalf("%d bytes left after %d replies", rr.Buffered(), len(realReplyCommands))
			}
			t.Logf("reply types: %q", types)
			if proto == 3 {
				for _, typ := range "+-:$*_,#(=%~|>" {
					if bytes.IndexByte(types, byte(typ)) < 0 {
						t.Errorf("no %q reply seen", typ)
					}
				}
			}
		})
	}
}

// readRealReply reads one reply with a deadline and returns its bytes.
func readRealReply(t *testing.T, rr *ReplyReader, what string) []byte {
	t.Helper()
	var s sinkRecorder
	if err := rr.ReadReply(&s); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if s.lasts != 1 || !s.lastSeen {
		t.Fatalf("%s: %d chunks marked last; final marked %v", what, s.lasts, s.lastSeen)
	}
	if testing.Verbose() && os.Getenv("RESP_DUMP") != "" {
		t.Logf("%s -> %.80q", what, s.data.Bytes())
	}
	return s.data.Bytes()
}
