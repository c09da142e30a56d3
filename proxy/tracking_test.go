package proxy

import (
	"strings"
	"testing"
	"time"
)

// askClientID asks c for its CLIENT ID (c must not be subscribed in RESP2).
func askClientID(t *testing.T, c *rawConn) string {
	t.Helper()
	c.send("CLIENT ID\r\n")
	id := c.line()
	if !strings.HasPrefix(id, ":") {
		t.Fatalf("CLIENT ID = %q", id)
	}
	return id[1:]
}

// redirectView is what a tracking client shows of its redirection, with the
// target's id (which differs between Redis and respguard) replaced by <id>.
type redirectView struct {
	getredir, trackinginfo, flags, redir string
}

func viewRedirect(t *testing.T, c *rawConn, target string) redirectView {
	t.Helper()
	c.send("CLIENT GETREDIR\r\nCLIENT TRACKINGINFO\r\nCLIENT INFO\r\n")
	r := c.replies(3)
	_, info := clientFields(strings.TrimSpace(r[2][strings.Index(r[2], "id="):]))
	hide := func(s string) string { return strings.ReplaceAll(s, ":"+target+"\r\n", ":<id>\r\n") }
	redir := info["redir"]
	if redir == target {
		redir = "<id>"
	}
	return redirectView{getredir: hide(r[0]), trackinginfo: hide(r[1]), flags: info["flags"], redir: redir}
}

// onBoth runs scenario against Redis and through the proxy and fails when
// what it returns differs.
func onBoth[T comparable](t *testing.T, tp *testProxy, scenario func(t *testing.T, addr string) T) T {
	t.Helper()
	want := scenario(t, tp.Redis.Addr)
	got := scenario(t, tp.Addr)
	if got != want {
		t.Fatalf("through respguard:\n%+v\nRedis directly:\n%+v", got, want)
	}
	return got
}

func TestTrackingRedirect(t *testing.T) {
	tp := startProxy(t, nil)

	t.Run("a subscribed RESP2 client receives the invalidations of the client that redirects to it", func(t *testing.T) {
		type seen struct {
			message string
			view    redirectView
		}
		got := onBoth(t, tp, func(t *testing.T, addr string) seen {
			inval, data, writer := rawTo(t, addr), rawTo(t, addr), rawTo(t, addr)
			id := askClientID(t, inval)
			inval.send("SUBSCRIBE __redis__:invalidate\r\n")
			inval.wire()
			data.send("CLIENT TRACKING ON REDIRECT " + id + "\r\nGET cached\r\n")
			data.replies(2)
			writer.send("SET cached v\r\n")
			writer.wire()
			return seen{message: inval.wire(), view: viewRedirect(t, data, id)}
		})
		if got.message != "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$6\r\ncached\r\n" || got.view.redir != "<id>" || got.view.flags != "t" {
			t.Fatalf("seen %+v", got)
		}
	})

	t.Run("BCAST with PREFIX redirects only the invalidations of keys under the prefix", func(t *testing.T) {
		type seen struct {
			first, second string
			view          redirectView
		}
		got := onBoth(t, tp, func(t *testing.T, addr string) seen {
			inval, data, writer := rawTo(t, addr), rawTo(t, addr), rawTo(t, addr)
			id := askClientID(t, inval)
			inval.send("SUBSCRIBE __redis__:invalidate\r\n")
			inval.wire()
			data.send("CLIENT TRACKING ON REDIRECT " + id + " BCAST PREFIX user:\r\n")
			data.wire()
			writer.send("SET user:1 v\r\n") // BCAST: Redis sends the keys of one event loop round together
			writer.wire()
			first := inval.wire()
			writer.send("SET other v\r\nSET user:2 v\r\n")
			writer.replies(2)
			return seen{first: first, second: inval.wire(), view: viewRedirect(t, data, id)}
		})
		if !strings.Contains(got.first, "user:1") || !strings.Contains(got.second, "user:2") || got.view.flags != "tB" {
			t.Fatalf("seen %+v", got)
		}
	})

	t.Run("a RESP3 client that is not subscribed receives the invalidations as pushes and goes on working", func(t *testing.T) {
		type seen struct{ before, push, after string }
		got := onBoth(t, tp, func(t *testing.T, addr string) seen {
			inval, data, writer := rawTo(t, addr), rawTo(t, addr), rawTo(t, addr)
			inval.send("HELLO 3\r\nSET mine 1\r\n")
			inval.wire()
			before := inval.wire()
			id := askClientID(t, inval)
			data.send("CLIENT TRACKING ON REDIRECT " + id + "\r\nGET cached3\r\n")
			data.replies(2)
			writer.send("SET cached3 v\r\n")
			writer.wire()
			push := inval.wire()
			inval.send("GET mine\r\n")
			return seen{before: before, push: push, after: inval.wire()}
		})
		if got.push != ">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\ncached3\r\n" || got.after != "$1\r\n1\r\n" {
			t.Fatalf("seen %+v", got)
		}
	})

	t.Run("a RESP3 client may redirect to itself", func(t *testing.T) {
		got := onBoth(t, tp, func(t *testing.T, addr string) string {
			self, writer := rawTo(t, addr), rawTo(t, addr)
			self.send("HELLO 3\r\n")
			self.wire()
			id := askClientID(t, self)
			self.send("CLIENT TRACKING ON REDIRECT " + id + "\r\nGET mirrored\r\n")
			self.replies(2)
			writer.send("SET mirrored v\r\n")
			writer.wire()
			return self.wire()
		})
		if !strings.Contains(got, "invalidate") {
			t.Fatalf("push %q", got)
		}
	})

	t.Run("a RESP2 target gets nothing until it subscribes, then the invalidations", func(t *testing.T) {
		got := onBoth(t, tp, func(t *testing.T, addr string) string {
			inval, data, writer := rawTo(t, addr), rawTo(t, addr), rawTo(t, addr)
			id := askClientID(t, inval)
			data.send("CLIENT TRACKING ON REDIRECT " + id + "\r\nGET lost\r\n")
			data.replies(2)
			writer.send("SET lost v\r\n") // not subscribed: dropped, as by Redis
			writer.wire()
			inval.send("SUBSCRIBE __redis__:invalidate\r\n")
			inval.wire()
			data.send("GET later\r\n")
			data.wire()
			writer.send("SET later v\r\n")
			writer.wire()
			return inval.wire()
		})
		if !strings.Contains(got, "later") {
			t.Fatalf("message %q", got)
		}
	})

	t.Run("a RESP3 client learns when its redirect target has gone, with the target's id", func(t *testing.T) {
		got := onBoth(t, tp, func(t *testing.T, addr string) redirectView {
			inval, data, writer := rawTo(t, addr), rawTo(t, addr), rawTo(t, addr)
			id := askClientID(t, inval)
			data.send("HELLO 3\r\nCLIENT TRACKING ON REDIRECT " + id + "\r\n")
			data.replies(2)
			inval.Close()
			// Redis notices the close in its own time: until then the
			// invalidations still go to the target. Each round tracks the key
			// again and changes it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				data.send("GET gone\r\n")
				data.wire()
				writer.send("SET gone v\r\n")
				writer.wire()
				data.send("PING\r\n")
				broken := false
				for r := data.wire(); r != "+PONG\r\n"; r = data.wire() {
					if r != ">2\r\n$21\r\ntracking-redir-broken\r\n:"+id+"\r\n" {
						t.Fatalf("unexpected %q", r)
					}
					broken = true
				}
				if broken {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no tracking-redir-broken push")
				}
			}
			return viewRedirect(t, data, id)
		})
		if got.flags != "tR" || !strings.Contains(got.trackinginfo, "broken_redirect") || got.getredir != ":<id>\r\n" {
			t.Fatalf("seen %+v", got)
		}
	})

	t.Run("REDIRECT to a client that does not exist, and option errors, are answered as by Redis", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT TRACKING ON REDIRECT 999999\r\n"+
			"CLIENT TRACKING ON REDIRECT 999999 REDIRECT 999998\r\n"+
			"CLIENT TRACKING ON FOO REDIRECT 999999\r\n"+
			"CLIENT TRACKING ON REDIRECT 999999 FOO\r\n"+
			"CLIENT TRACKING ON REDIRECT abc\r\n"+
			"CLIENT TRACKING ON REDIRECT 0\r\n"+
			"CLIENT TRACKING ON REDIRECT -1\r\n"+
			"CLIENT TRACKING OFF REDIRECT 999999\r\n"+
			"CLIENT TRACKING ON REDIRECT\r\n"+
			"CLIENT GETREDIR\r\nCLIENT TRACKINGINFO\r\n"+
			"CLIENT TRACKING ON BCAST PREFIX a\r\nCLIENT GETREDIR\r\nCLIENT TRACKINGINFO\r\n", 14)
	})

	t.Run("the redirect target's id and a second REDIRECT are checked in Redis's order", func(t *testing.T) {
		onBoth(t, tp, func(t *testing.T, addr string) string {
			target, data := rawTo(t, addr), rawTo(t, addr)
			id := askClientID(t, target)
			data.send("CLIENT TRACKING ON REDIRECT " + id + " REDIRECT " + id + "\r\nCLIENT TRACKING ON REDIRECT " + id + " PREFIX p\r\nCLIENT GETREDIR\r\n")
			return strings.Join(data.replies(3), "")
		})
	})

	t.Run("a target pinned by another client's REDIRECT runs its next command after those still in flight", func(t *testing.T) {
		target, data, direct := rawTo(t, tp.Addr), rawTo(t, tp.Addr), rawTo(t, tp.Redis.Addr)
		id := askClientID(t, target)
		direct.send("CLIENT PAUSE 20000 WRITE\r\n")
		direct.wire()
		defer func() { direct.send("CLIENT UNPAUSE\r\n"); direct.wire() }()
		target.send("SET ordered 1\r\n") // over a shared connection, held by the pause
		waitRedisBlocked(t, tp)
		data.send("CLIENT TRACKING ON REDIRECT " + id + "\r\n")
		if r := data.wire(); r != "+OK\r\n" {
			t.Fatalf("CLIENT TRACKING: %q", r)
		}
		target.send("GET ordered\r\n") // a read, not held: it must wait for the SET
		direct.send("CLIENT UNPAUSE\r\n")
		direct.wire()
		if r := target.replies(2); r[1] != "$1\r\n1\r\n" {
			t.Fatalf("GET after SET = %q", r[1])
		}
	})
}
