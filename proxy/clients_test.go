package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// clientFields splits one CLIENT LIST line into its keys, in order, and
// their values.
func clientFields(line string) (keys []string, vals map[string]string) {
	vals = map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
		vals[k] = v
	}
	return keys, vals
}

// clientsByName parses a CLIENT LIST reply into lines by client name.
func clientsByName(t *testing.T, text string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			continue
		}
		_, vals := clientFields(line)
		out[vals["name"]] = vals
	}
	return out
}

// stateScenario puts four named clients of addr in four states (idle,
// blocked in BLPOP, inside MULTI with one command queued, subscribed) and
// returns an observer connection, named too, once CLIENT LIST shows the
// blocked one blocked.
func stateScenario(t *testing.T, addr string) (observer *rawConn, list func(args string) string) {
	t.Helper()
	idle := rawTo(t, addr)
	idle.send("CLIENT SETNAME idle\r\n")
	blocked := rawTo(t, addr)
	blocked.send("CLIENT SETNAME blocked\r\nBLPOP nothing-here 0\r\n")
	multi := rawTo(t, addr)
	multi.send("CLIENT SETNAME multi\r\nMULTI\r\nSET k v\r\n")
	sub := rawTo(t, addr)
	sub.send("CLIENT SETNAME sub\r\nSUBSCRIBE ch\r\n")
	for _, c := range []*rawConn{idle, blocked, multi, sub} {
		if v := c.reply(); v != "OK" {
			t.Fatalf("CLIENT SETNAME: %v", v)
		}
	}
	multi.replies(2)
	sub.replies(1)
	observer = rawTo(t, addr)
	observer.send("CLIENT SETNAME observer\r\n")
	observer.reply()
	t.Cleanup(func() { // a shutdown waits for replies in flight: end the BLPOP
		observer.send("RPUSH nothing-here x\r\n")
		observer.reply()
	})
	list = func(args string) string {
		observer.send("CLIENT LIST" + args + "\r\n")
		s, _ := observer.reply().(string)
		return s
	}
	deadline := time.Now().Add(10 * time.Second)
	for clientsByName(t, list(""))["blocked"]["flags"] != "b" {
		if time.Now().After(deadline) {
			t.Fatalf("the blocked client never showed as blocked:\n%s", list(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return observer, list
}

func TestClientListDescribesRespguardsClientsAsRedisDoes(t *testing.T) {
	tp := startProxy(t, nil)
	direct := redistest.Start(t)
	_, viaList := stateScenario(t, tp.Addr)
	_, directList := stateScenario(t, direct.Addr)
	viaText, directText := viaList(""), directList("")
	t.Logf("through respguard:\n%s\ndirectly:\n%s", viaText, directText)

	t.Run("the same clients appear, respguard's upstream connections do not", func(t *testing.T) {
		via, want := clientsByName(t, viaText), clientsByName(t, directText)
		names := func(m map[string]map[string]string) []string {
			var n []string
			for k := range m {
				n = append(n, k)
			}
			slices.Sort(n)
			return n
		}
		if !slices.Equal(names(via), names(want)) {
			t.Fatalf("through respguard:\n%s\ndirectly:\n%s", viaText, directText)
		}
	})
	t.Run("each line has Redis's fields in Redis's order, with the same values where they can match", func(t *testing.T) {
		ignore := map[string]bool{"id": true, "addr": true, "laddr": true, "fd": true, "age": true, "idle": true,
			"qbuf": true, "qbuf-free": true, "argv-mem": true, "multi-mem": true, "rbs": true, "rbp": true,
			"obl": true, "oll": true, "omem": true, "tot-mem": true}
		viaLines := strings.Split(strings.TrimSpace(viaText), "\n")
		wantKeys, _ := clientFields(strings.Split(directText, "\n")[0])
		want := clientsByName(t, directText)
		for _, line := range viaLines {
			keys, vals := clientFields(line)
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("fields %v, Redis prints %v", keys, wantKeys)
			}
			for _, k := range keys {
				if !ignore[k] && vals[k] != want[vals["name"]][k] {
					t.Errorf("client %s: %s=%q, Redis shows %q", vals["name"], k, vals[k], want[vals["name"]][k])
				}
			}
		}
	})
	t.Run("ids are unique per client and the listener is the proxy", func(t *testing.T) {
		seen := map[string]bool{}
		for _, c := range clientsByName(t, viaText) {
			if seen[c["id"]] {
				t.Errorf("id %s twice:\n%s", c["id"], viaText)
			}
			seen[c["id"]] = true
			if c["laddr"] != tp.Addr {
				t.Errorf("laddr=%s, want %s", c["laddr"], tp.Addr)
			}
		}
	})
	t.Run("TYPE and ID filters select as Redis does", func(t *testing.T) {
		blockedID := clientsByName(t, viaText)["blocked"]["id"]
		for _, tc := range []struct{ args, want string }{
			{" TYPE pubsub", "sub"},
			{" TYPE normal", "blocked idle multi observer"},
			{" TYPE replica", ""},
			{" ID " + blockedID + " 999999", "blocked"},
		} {
			got := clientsByName(t, viaList(tc.args))
			var names []string
			for n := range got {
				names = append(names, n)
			}
			slices.Sort(names)
			if strings.Join(names, " ") != tc.want {
				t.Errorf("CLIENT LIST%s = %v, want %s", tc.args, names, tc.want)
			}
		}
	})
	t.Run("bad arguments get Redis's errors", func(t *testing.T) {
		for _, args := range []string{" TYPE nope", " ID x", " FOO"} {
			via, want := rawTo(t, tp.Addr), rawTo(t, direct.Addr)
			via.send("CLIENT LIST" + args + "\r\n")
			want.send("CLIENT LIST" + args + "\r\n")
			if v, w := via.reply(), want.reply(); v != w {
				t.Errorf("CLIENT LIST%s: %v, Redis: %v", args, v, w)
			}
		}
	})
}

func TestClientIDAndInfoDescribeTheCallingClient(t *testing.T) {
	tp := startProxy(t, nil)
	a, b := tp.raw(t), tp.raw(t)
	ids := map[int64]bool{}
	for _, c := range []*rawConn{a, b} {
		c.send("CLIENT ID\r\nCLIENT INFO\r\n")
		id, _ := c.reply().(int64)
		info, _ := c.reply().(string)
		_, vals := clientFields(info)
		if vals["id"] != fmt.Sprint(id) || vals["cmd"] != "client|info" || vals["addr"] != c.LocalAddr().String() || !strings.HasSuffix(info, "\n") {
			t.Errorf("CLIENT ID %d, CLIENT INFO %q", id, info)
		}
		ids[id] = true
	}
	if len(ids) != 2 {
		t.Errorf("two clients share an id: %v", ids)
	}
	t.Run("in RESP3 CLIENT INFO is a verbatim string, and MULTI splices it into EXEC", func(t *testing.T) {
		c := tp.raw(t)
		c.send("HELLO 3\r\nCLIENT INFO\r\nMULTI\r\nCLIENT ID\r\nEXEC\r\n")
		c.wire()
		if v := c.wire(); !strings.HasPrefix(v, "=") || !strings.Contains(v, "txt:id=") {
			t.Errorf("CLIENT INFO in RESP3: %q", v)
		}
		c.replies(2)
		if v := c.wire(); !strings.HasPrefix(v, "*1\r\n:") {
			t.Errorf("EXEC with CLIENT ID queued: %q", v)
		}
	})
}

func TestClientListShowsAChangeOnceItsReplyIsIn(t *testing.T) {
	tp := startProxy(t, nil)
	changer, observer := tp.raw(t), tp.raw(t)
	changerID := clientID(t, changer)
	// Hold the changer's reader after each command, its reply sent: what
	// CLIENT LIST shows must not wait for the reader to come back.
	goOn := make(chan struct{})
	t.Cleanup(func() { close(goOn) })
	hold := func(s *session) {
		// Only after the steps' commands: the reader may come to its hook
		// for CLIENT ID, answered already, only once the hook is in.
		if int64(s.id) == changerID && s.lastCmd != "client|id" {
			<-goOn
		}
	}
	tp.Server.afterCommand.Store(&hold)
	for _, step := range []struct{ cmd, reply, field string }{
		{"CLIENT SETNAME shown-at-once", "+OK", "name=shown-at-once"},
		{"SELECT 5", "+OK", "db=5"},
		{"HELLO 3", "%7", "resp=3"},
	} {
		changer.send(step.cmd + "\r\n")
		if got := changer.line(); got != step.reply {
			t.Fatalf("%s: %q", step.cmd, got)
		}
		observer.send(fmt.Sprintf("CLIENT LIST ID %d\r\n", changerID))
		line, _ := observer.reply().(string)
		if !slices.Contains(strings.Fields(line), step.field) {
			t.Fatalf("after %s's reply, CLIENT LIST shows %q (no %q)", step.cmd, line, step.field)
		}
		goOn <- struct{}{} // the changer's reader goes on to its next command
	}
}

// seeBlockedInTurn has a client pipeline two BLPOPs and a PING over addr,
// whose upstream is upstream, and returns CLIENT LIST's flags and cmd for
// it while it waits in the first, in the second (the first answered), and
// once it has every reply.
func seeBlockedInTurn(t *testing.T, addr, upstream string) []string {
	t.Helper()
	blocked, other := rawTo(t, addr), rawTo(t, addr)
	id := clientID(t, blocked)
	waitUpstream := func() {
		pollUntil(t, 10*time.Second, "a client blocked in Redis", func() bool {
			v, err := redistest.Do(upstream, "INFO", "clients")
			return err == nil && strings.Contains(v, "blocked_clients:1\r\n")
		})
	}
	var seen []string
	list := func() {
		other.send(fmt.Sprintf("CLIENT LIST ID %d\r\n", id))
		line, _ := other.reply().(string)
		_, vals := clientFields(line)
		seen = append(seen, "flags="+vals["flags"]+" cmd="+vals["cmd"])
	}
	blocked.send("BLPOP inturn-a 0\r\nBLPOP inturn-b 0\r\nPING\r\n")
	waitUpstream()
	list()
	other.send("RPUSH inturn-a x\r\n")
	other.reply()
	blocked.replies(1)
	waitUpstream()
	list()
	other.send("RPUSH inturn-b y\r\n")
	other.reply()
	blocked.replies(2)
	list()
	return seen
}

func TestClientListShowsTheBlockingCommandAClientWaitsIn(t *testing.T) {
	tp := startProxy(t, nil)
	direct := redistest.Start(t)
	via, want := seeBlockedInTurn(t, tp.Addr, tp.Redis.Addr), seeBlockedInTurn(t, direct.Addr, direct.Addr)
	if !slices.Equal(via, want) {
		t.Errorf("through respguard: %q\nRedis:             %q", via, want)
	}
}
