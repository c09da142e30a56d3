package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
)

// rawDirect is a raw connection to the redis-server behind tp.
func (tp *testProxy) rawDirect(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", tp.Redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c), t: t}
}

// session returns tp's session of client id.
func (tp *testProxy) session(t *testing.T, id int64) *session {
	t.Helper()
	for _, s := range tp.Server.clients() {
		if s.id == uint64(id) {
			return s
		}
	}
	t.Fatalf("no session %d", id)
	return nil
}

// waitHeld waits until client id's command is held by a CLIENT PAUSE. It
// reads the session directly: under a pause of ALL, CLIENT LIST itself waits.
func waitHeld(t *testing.T, tp *testProxy, id int64) {
	t.Helper()
	s := tp.session(t, id)
	pollUntil(t, 10*time.Second, fmt.Sprintf("client %d held by the pause", id), s.pause.waiting.Load)
}

func TestClientPauseHoldsRespguardClients(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)

	t.Run("WRITE holds a SET while GET runs and Redis itself is not paused; UNPAUSE releases it", func(t *testing.T) {
		admin, writer, reader := tp.raw(t), tp.raw(t), tp.raw(t)
		id := clientID(t, writer)
		admin.send("CLIENT PAUSE 100000 WRITE\r\n")
		if v := admin.reply(); v != "OK" {
			t.Fatalf("CLIENT PAUSE: %v", v)
		}
		writer.send("SET paused:k v\r\n")
		waitBlocked(t, admin, id) // flags=b, as Redis shows a postponed client
		admin.send(fmt.Sprintf("CLIENT LIST ID %d\r\n", id))
		if _, f := clientFields(admin.reply().(string)); f["cmd"] != "set" {
			t.Fatalf("the held client's cmd: %q", f["cmd"])
		}
		reader.send("GET paused:k\r\n")
		if v := reader.reply(); v != nil {
			t.Fatalf("GET during the write pause: %v (the SET ran?)", v)
		}
		if err := tp.direct(t).Set(ctx, "direct:k", "v", 0).Err(); err != nil {
			t.Fatalf("a direct client's SET: %v", err)
		}
		admin.send("CLIENT UNPAUSE\r\n")
		if v := admin.reply(); v != "OK" {
			t.Fatalf("CLIENT UNPAUSE: %v", v)
		}
		if v := writer.reply(); v != "OK" {
			t.Fatalf("SET after UNPAUSE: %v", v)
		}
	})

	t.Run("WRITE holds EVAL, PUBLISH and an EXEC that writes; not EVAL_RO or an EXEC that only reads", func(t *testing.T) {
		admin, c, ro := tp.raw(t), tp.raw(t), tp.raw(t)
		id := clientID(t, c)
		c.send("MULTI\r\nSET tx:k v\r\n")
		c.reply()
		c.reply()
		ro.send("MULTI\r\nGET tx:k\r\n")
		ro.reply()
		ro.reply()
		admin.send("CLIENT PAUSE 100000 WRITE\r\n")
		admin.reply()
		defer func() { admin.send("CLIENT UNPAUSE\r\n"); admin.reply() }()
		ro.send("EXEC\r\nEVAL_RO \"return 1\" 0\r\n")
		if v, ok := ro.reply().([]any); !ok || len(v) != 1 || v[0] != nil {
			t.Fatalf("read-only EXEC during the pause: %#v", v)
		}
		if v := ro.reply(); v != int64(1) {
			t.Fatalf("EVAL_RO during the pause: %v", v)
		}
		for _, cmd := range []string{"EXEC", "EVAL \"return 1\" 0", "PUBLISH ch m"} {
			c.send(cmd + "\r\n")
			waitHeld(t, tp, id)
			admin.send("CLIENT UNPAUSE\r\n")
			admin.reply()
			if v, ok := c.reply().(error); ok {
				t.Fatalf("%s after UNPAUSE: %v", cmd, v)
			}
			admin.send("CLIENT PAUSE 100000 WRITE\r\n")
			admin.reply()
		}
	})

	t.Run("ALL holds every command, CLIENT UNPAUSE too, until the timeout", func(t *testing.T) {
		admin, c := tp.raw(t), tp.raw(t)
		id, adminID := clientID(t, c), clientID(t, admin)
		start := time.Now()
		admin.send("CLIENT PAUSE 2000 ALL\r\n")
		admin.reply()
		c.send("PING\r\n")
		admin.send("CLIENT UNPAUSE\r\n")
		waitHeld(t, tp, id)
		waitHeld(t, tp, adminID)
		if err := tp.direct(t).Ping(ctx).Err(); err != nil {
			t.Fatalf("a direct client's PING: %v", err)
		}
		if v := c.reply(); v != "PONG" {
			t.Fatalf("PING after the pause: %v", v)
		}
		if since := time.Since(start); since < 2*time.Second {
			t.Fatalf("PING answered %s into a 2 s pause", since)
		}
		if v := admin.reply(); v != "OK" {
			t.Fatalf("CLIENT UNPAUSE after the pause: %v", v)
		}
	})

	t.Run("a held client can be killed", func(t *testing.T) {
		admin, c := tp.raw(t), tp.raw(t)
		id := clientID(t, c)
		admin.send("CLIENT PAUSE 100000 WRITE\r\n")
		admin.reply()
		c.send("SET killed:k v\r\n")
		waitHeld(t, tp, id)
		admin.send(fmt.Sprintf("CLIENT KILL ID %d\r\n", id))
		if v := admin.reply(); v != int64(1) {
			t.Fatalf("CLIENT KILL ID: %v", v)
		}
		c.expectClosed()
		admin.send("CLIENT UNPAUSE\r\n")
		admin.reply()
		if n, _ := tp.direct(t).Exists(ctx, "killed:k").Result(); n != 0 {
			t.Fatal("the killed client's held SET ran")
		}
	})

	t.Run("a held client that leaves is let go at once, and its command never runs", func(t *testing.T) {
		admin, c := tp.raw(t), tp.raw(t)
		id := clientID(t, c)
		admin.send("CLIENT PAUSE 100000 WRITE\r\n")
		admin.reply()
		c.send("SET left:k v\r\n")
		waitHeld(t, tp, id)
		c.Close()
		pollUntil(t, 10*time.Second, "the session to end during the pause", func() bool {
			for _, s := range tp.Server.clients() {
				if s.id == uint64(id) {
					return false
				}
			}
			return true
		})
		admin.send("CLIENT UNPAUSE\r\n")
		admin.reply()
		if n, _ := tp.direct(t).Exists(ctx, "left:k").Result(); n != 0 {
			t.Fatal("the departed client's held SET ran")
		}
	})

	t.Run("inside MULTI, PAUSE and UNPAUSE are queued and answered in EXEC's array", func(t *testing.T) {
		c := tp.raw(t)
		c.send("MULTI\r\nCLIENT PAUSE 100000 WRITE\r\nCLIENT UNPAUSE\r\nEXEC\r\n")
		for _, want := range []any{"OK", "QUEUED", "QUEUED"} {
			if v := c.reply(); v != want {
				t.Fatalf("got %v, want %v", v, want)
			}
		}
		if v := fmt.Sprint(c.reply()); v != "[OK OK]" {
			t.Fatalf("EXEC: %v", v)
		}
		if tp.Server.paused.on.Load() {
			t.Fatal("still paused")
		}
	})
}

func TestClientPauseErrorsAsRedis(t *testing.T) {
	tp := startProxy(t, nil)
	proxied, direct := tp.raw(t), tp.rawDirect(t)
	for _, cmd := range []string{
		"CLIENT PAUSE abc", "CLIENT PAUSE -1", "CLIENT PAUSE 10 foo", "CLIENT PAUSE 10 write extra",
		"CLIENT PAUSE", "CLIENT UNPAUSE x", "CLIENT PAUSE 9223372036854775807",
		"CLIENT NO-EVICT maybe", "CLIENT NO-EVICT", "CLIENT NO-TOUCH on", "CLIENT SETINFO lib-name x",
	} {
		proxied.send(cmd + "\r\n")
		direct.send(cmd + "\r\n")
		if got, want := proxied.reply(), direct.reply(); got != want {
			t.Errorf("%s: respguard %v, Redis %v", cmd, got, want)
		}
	}
}

func TestShutdownWhilePaused(t *testing.T) {
	tp := startProxy(t, nil)
	admin, c := tp.raw(t), tp.raw(t)
	id := clientID(t, c)
	admin.send("CLIENT PAUSE 100000 ALL\r\n")
	admin.reply()
	c.send("PING\r\n")
	waitHeld(t, tp, id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Server.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a held client: %v", err)
	}
	c.expectClosed()
}

func TestClientNoEvictShowsFlag(t *testing.T) {
	tp := startProxy(t, nil)
	c := tp.raw(t)
	c.send("CLIENT NO-EVICT on\r\nCLIENT INFO\r\nCLIENT NO-EVICT off\r\nCLIENT INFO\r\n")
	if v := c.reply(); v != "OK" {
		t.Fatalf("CLIENT NO-EVICT on: %v", v)
	}
	if _, f := clientFields(c.reply().(string)); f["flags"] != "e" {
		t.Fatalf("flags with no-evict on: %q", f["flags"])
	}
	c.reply()
	if _, f := clientFields(c.reply().(string)); f["flags"] != "N" {
		t.Fatalf("flags with no-evict off: %q", f["flags"])
	}
}

func TestClientSetinfoAtConnectAsDirect(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		c := tp.client(t, proto, func(o *redis.Options) { o.DisableIdentity = false }) // go-redis sends CLIENT SETINFO
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("RESP%d PING after go-redis's CLIENT SETINFO: %v", proto, err)
		}
	}
}

func TestNewerClientSubcommandsNeverShared(t *testing.T) {
	infos := policy.BuiltinCommands().List()
	for i := range infos {
		if infos[i].Name == "client" {
			infos[i].Subcommands = append(infos[i].Subcommands,
				policy.CommandInfo{Name: "client|no-touch", Arity: 3, Flags: []string{"noscript", "loading", "stale"}},
				policy.CommandInfo{Name: "client|setinfo", Arity: 4, Flags: []string{"noscript", "loading", "stale"}})
		}
	}
	table, err := policy.NewCommands(infos)
	if err != nil {
		t.Fatal(err)
	}
	m := newCommandModel(table)
	for _, sub := range []string{"NO-TOUCH", "SETINFO"} {
		t.Run("a table that knows CLIENT "+sub+" (Redis 7.2) keeps it off shared connections", func(t *testing.T) {
			var buf [32]byte
			args := [][]byte{[]byte("CLIENT"), []byte(sub), []byte("on")}
			if cls := m.classify(lowerName(buf[:], args[0]), args); cls.shareable() || cls.kind != kindIsolated {
				t.Fatalf("kind %d, shareable %v", cls.kind, cls.shareable())
			}
		})
	}
}
