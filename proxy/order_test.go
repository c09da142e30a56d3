package proxy

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// TestCommandsRunInOrderAcrossConnectionMoves pipelines commands behind a
// 20 MB GET (its reply holds the shared connection's later commands in
// respguard while it is read) and then a command that moves the client to
// another upstream connection. What that later command sees must be what a
// direct connection sees: it runs after the commands sent before it.
func TestCommandsRunInOrderAcrossConnectionMoves(t *testing.T) {
	tp := startProxy(t, nil)
	direct := tp.direct(t)
	cases := []struct {
		name string
		send string
		read func(t *testing.T, rc *rawConn) string // reads the replies, returns what the last command saw
		want string
	}{
		{"a GET after SELECT sees the key MOVE put in that db",
			"SET k v\r\nMOVE k 1\r\nSELECT 1\r\nGET k\r\n",
			func(t *testing.T, rc *rawConn) string { expectLines(t, rc, "+OK", ":1", "+OK"); return rc.line() },
			"$1"},
		{"a GET after SELECT sees the db SWAPDB swapped in",
			"SET k v\r\nSWAPDB 0 1\r\nSELECT 1\r\nGET k\r\n",
			func(t *testing.T, rc *rawConn) string { expectLines(t, rc, "+OK", "+OK", "+OK"); return rc.line() },
			"$1"},
		{"a GET after SELECT sees what a script wrote in that db",
			"EVAL \"redis.call('select', '1') return redis.call('set', 'k', 'v')\" 0\r\nSELECT 1\r\nGET k\r\n",
			func(t *testing.T, rc *rawConn) string { expectLines(t, rc, "+OK", "+OK"); return rc.line() },
			"$1"},
		{"a GET after HELLO 3 sees the SET before it",
			"SET k v\r\nHELLO 3\r\nGET k\r\n",
			func(t *testing.T, rc *rawConn) string {
				expectLines(t, rc, "+OK")
				readUntil(t, rc, "*0")
				return rc.line()
			},
			"$1"},
		{"INFO after SELECT counts the key the SET before it wrote",
			"SET k v\r\nSELECT 1\r\nINFO keyspace\r\n",
			func(t *testing.T, rc *rawConn) string {
				expectLines(t, rc, "+OK", "+OK")
				body := readBulk(t, rc)
				if strings.Contains(body, "db0:keys=2,") {
					return "db0:keys=2"
				}
				return body
			},
			"db0:keys=2"},
		{"a transaction sees the SET sent before MULTI",
			"SET k v\r\nMULTI\r\nGET k\r\nEXEC\r\n",
			func(t *testing.T, rc *rawConn) string {
				expectLines(t, rc, "+OK", "+OK", "+QUEUED", "*1")
				return rc.line()
			},
			"$1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := direct.FlushAll(ctxT(t)).Err(); err != nil {
				t.Fatal(err)
			}
			if err := direct.Set(ctxT(t), "big", strings.Repeat("v", 20<<20), 0).Err(); err != nil {
				t.Fatal(err)
			}
			rc := tp.raw(t)
			_ = rc.SetDeadline(time.Now().Add(time.Minute))
			openSharedConns(t, rc)
			rc.send("GET big\r\n" + c.send)
			if n := len(readBulk(t, rc)); n != 20<<20 {
				t.Fatalf("GET big: %d bytes", n)
			}
			if got := c.read(t, rc); got != c.want {
				t.Fatalf("the last command saw %q, want %q (it ran before a command sent ahead of it)", got, c.want)
			}
		})
	}
}

// openSharedConns has the client use the shared connections of db 1 and of
// RESP3 once, so that a later move there waits for no dial, and leaves it
// in db 0, RESP2.
func openSharedConns(t *testing.T, rc *rawConn) {
	t.Helper()
	rc.send("SELECT 1\r\nPING\r\nSELECT 0\r\nPING\r\nHELLO 3\r\nPING\r\nHELLO 2\r\nPING\r\n")
	expectLines(t, rc, "+OK", "+PONG", "+OK", "+PONG")
	for range 2 {
		readUntil(t, rc, "*0") // HELLO's reply ends with its empty modules array
		expectLines(t, rc, "+PONG")
	}
}

// readUntil reads lines up to and including want.
func readUntil(t *testing.T, rc *rawConn, want string) {
	t.Helper()
	for rc.line() != want {
	}
}

// readBulk reads one bulk string reply and returns its body.
func readBulk(t *testing.T, rc *rawConn) string {
	t.Helper()
	head := rc.line()
	var n int
	if _, err := fmt.Sscanf(head, "$%d", &n); err != nil {
		t.Fatalf("want a bulk reply, got %q", head)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(rc.r, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// In cluster mode a client's commands for one node move to another of its
// connections when the protocol changes: the GET after HELLO 3 must still
// run after the SET sent before it.
func TestClusterCommandsRunInOrderAcrossHello(t *testing.T) {
	rcl := redistest.StartCluster(t, 1, 0)
	tp := startClusterProxy(t, rcl, nil, Options{})
	if err := clusterDirect(t, rcl).Set(ctxT(t), "{o}big", strings.Repeat("v", 20<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	rc := tp.raw(t)
	_ = rc.SetDeadline(time.Now().Add(time.Minute))
	rc.send("HELLO 3\r\nGET {o}k\r\nHELLO 2\r\nGET {o}k\r\n") // both protocols' connections exist
	readUntil(t, rc, "*0")
	expectLines(t, rc, "_")
	readUntil(t, rc, "*0")
	expectLines(t, rc, "$-1")
	rc.send("GET {o}big\r\nSET {o}k v\r\nHELLO 3\r\nGET {o}k\r\n")
	if n := len(readBulk(t, rc)); n != 20<<20 {
		t.Fatalf("GET big: %d bytes", n)
	}
	expectLines(t, rc, "+OK")
	readUntil(t, rc, "*0")
	if got := rc.line(); got != "$1" {
		t.Fatalf("GET after HELLO 3 saw %q, want $1 (it ran before the SET sent ahead of it)", got)
	}
}
