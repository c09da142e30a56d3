package proxy

import (
	"testing"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool/redistest"
)

// contextRefusal is Redis 7.0's reply to a command a RESP2 client in
// Pub/Sub mode may not run.
func contextRefusal(name string) string {
	return "-ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
}

// TestSubscribedContext: a RESP2 client in Pub/Sub mode gets Redis's refusal,
// by the command's full lower-case name, for anything but the Pub/Sub
// commands, PING, QUIT and RESET, whether respguard would answer it itself,
// rewrite it (the guard's DEL) or forward it; unknown commands and ACL
// denials come first, as in Redis; RESP3 clients are not refused.
func TestSubscribedContext(t *testing.T) {
	pol := newPolicy(t, policy.Config{Users: map[string]string{
		"full":  "on >full-pw allcommands allkeys allchannels",
		"nodel": "on >nodel-pw allcommands -del allkeys allchannels",
	}})
	grd, err := guard.New(guard.Config{}, nil) // DEL runs as a script
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: pol, Guard: grd})
	expect := func(t *testing.T, rc *rawConn, want ...string) {
		t.Helper()
		for _, w := range want {
			if got := rc.line(); got != w {
				t.Fatalf("got %q, want %q", got, w)
			}
		}
	}
	subscribed := []string{"*3", "$9", "subscribe", "$1", "c", ":1"}

	// One command at a time: a reply respguard makes itself may overtake
	// replies still in flight from Redis on the subscription's stream.
	do := func(t *testing.T, rc *rawConn, cmd string, want ...string) {
		t.Helper()
		rc.send(cmd + "\r\n")
		expect(t, rc, want...)
	}
	t.Run("commands respguard answers, rewrites or forwards are refused by name", func(t *testing.T) {
		rc := tp.raw(t)
		do(t, rc, "AUTH full full-pw", "+OK")
		do(t, rc, "SUBSCRIBE c", subscribed...)
		for cmd, name := range map[string]string{
			"Del k": "del", "AUTH nodel nodel-pw": "auth", "client SETNAME n": "client|setname", "CLIENT GETNAME": "client|getname",
			"SELECT 1": "select", "HELLO 3": "hello", `EVAL "return 1" 0`: "eval", "PUBLISH c m": "publish",
		} {
			do(t, rc, cmd, contextRefusal(name))
		}
		do(t, rc, "PING", "*2", "$4", "pong", "$0", "")
		do(t, rc, "NOSUCH a", "-ERR unknown command 'NOSUCH', with args beginning with: 'a' ")
		do(t, rc, "DEL", "-ERR wrong number of arguments for 'del' command")
		do(t, rc, "UNSUBSCRIBE c", "*3", "$11", "unsubscribe", "$1", "c", ":0")
		do(t, rc, "ACL WHOAMI", "$4", "full") // AUTH nodel did not take effect
		do(t, rc, "CLIENT GETNAME", "$-1")    // nor did SETNAME
	})
	t.Run("an ACL denial comes before the refusal", func(t *testing.T) {
		rc := tp.raw(t)
		do(t, rc, "AUTH nodel nodel-pw", "+OK")
		do(t, rc, "SUBSCRIBE c", subscribed...)
		do(t, rc, "DEL k", "-NOPERM this user has no permissions to run the 'del' command")
		do(t, rc, "GET k", contextRefusal("get"))
	})
	t.Run("the context ends with the last subscription", func(t *testing.T) {
		rc := tp.raw(t)
		do(t, rc, "SUBSCRIBE c", subscribed...)
		do(t, rc, "UNSUBSCRIBE c", "*3", "$11", "unsubscribe", "$1", "c", ":0")
		do(t, rc, "CLIENT SETNAME after", "+OK")
		do(t, rc, "CLIENT GETNAME", "$5", "after")
	})
	t.Run("RESP3 clients run any command while subscribed", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("HELLO 3\r\n")
		if got := rc.line(); got != "%7" {
			t.Fatalf("HELLO 3 = %q", got)
		}
		for rc.line() != "*0" { // modules: HELLO's last field
		}
		rc.send("SUBSCRIBE c\r\n")
		expect(t, rc, ">3", "$9", "subscribe", "$1", "c", ":1")
		rc.send("CLIENT SETNAME r3\r\n")
		expect(t, rc, "+OK")
		rc.send("CLIENT GETNAME\r\n")
		expect(t, rc, "$2", "r3")
	})
}
