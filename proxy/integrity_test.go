package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// rawTo opens a raw protocol connection to addr (the proxy or Redis itself).
func rawTo(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c), t: t}
}

// wire reads one whole RESP2/RESP3 reply and returns its bytes.
func (c *rawConn) wire() string {
	c.t.Helper()
	var b strings.Builder
	c.readValue(&b)
	return b.String()
}

func (c *rawConn) readValue(b *strings.Builder) {
	c.t.Helper()
	line := c.line()
	b.WriteString(line + "\r\n")
	if line == "" {
		c.t.Fatal("empty reply line")
	}
	n, _ := strconv.Atoi(line[1:])
	switch line[0] {
	case '$', '!', '=':
		if n >= 0 {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				c.t.Fatalf("read bulk: %v", err)
			}
			b.Write(buf)
		}
	case '*', '>', '~':
		for i := 0; i < n; i++ {
			c.readValue(b)
		}
	case '%', '|':
		for i := 0; i < 2*n; i++ {
			c.readValue(b)
		}
	}
}

// replies reads n whole replies.
func (c *rawConn) replies(n int) []string {
	c.t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = c.wire()
	}
	return out
}

// sameAsRedis sends script to Redis directly and through the proxy, reads
// n replies from each, and fails on any difference.
func sameAsRedis(t *testing.T, tp *testProxy, script string, n int) []string {
	t.Helper()
	direct := rawTo(t, tp.Redis.Addr)
	direct.send(script)
	want := direct.replies(n)
	proxied := rawTo(t, tp.Addr)
	proxied.send(script)
	got := proxied.replies(n)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reply %d through respguard = %q, Redis directly = %q (all: %q vs %q)", i, got[i], want[i], got, want)
		}
	}
	return got
}

// otherClientUnaffected checks that another client on the same shared
// connection still gets its own replies, promptly.
func otherClientUnaffected(t *testing.T, tp *testProxy, proto int) {
	t.Helper()
	ctx := ctxT(t)
	c := tp.client(t, proto, func(o *redis.Options) { o.ReadTimeout = 5 * time.Second })
	token := fmt.Sprintf("token-%d", time.Now().UnixNano())
	if err := c.Set(ctx, "other:"+token, token, 0).Err(); err != nil {
		t.Fatalf("another client's SET: %v", err)
	}
	if v, err := c.Get(ctx, "other:"+token).Result(); err != nil || v != token {
		t.Fatalf("another client's GET = %q, %v; want %q", v, err, token)
	}
}

func TestCommandsWithoutExactlyOneReplyKeepSharedConnectionsInStep(t *testing.T) {
	// One shared connection: any extra or missing reply would shift the
	// next client's.
	tp := startProxy(t, func(c *Config, p *pool.Config) { p.SharedConns = 1 })
	t.Run("REPLCONF ACK and GETACK get no reply, as from Redis", func(t *testing.T) {
		sameAsRedis(t, tp, "REPLCONF ACK 0\r\nREPLCONF GETACK *\r\nECHO mine\r\n", 1)
		otherClientUnaffected(t, tp, 2)
	})
	t.Run("REPLCONF without a reply does not hand another client's reply over", func(t *testing.T) {
		a := tp.raw(t)
		a.send("REPLCONF ACK 0\r\nPING\r\n")
		if got := a.line(); got != "+PONG" {
			t.Fatalf("got %q", got)
		}
		otherClientUnaffected(t, tp, 2)
		a.send("ECHO a-token\r\n")
		if got := a.wire(); got != "$7\r\na-token\r\n" {
			t.Fatalf("A's ECHO = %q", got)
		}
	})
	t.Run("a command the model does not know gets Redis's answer without sharing a connection", func(t *testing.T) {
		sameAsRedis(t, tp, "NOSUCHCMD a\r\nECHO mine\r\n", 2)
		otherClientUnaffected(t, tp, 2)
	})
	t.Run("other REPLCONF subcommands get Redis's one reply over a connection of their own", func(t *testing.T) {
		sameAsRedis(t, tp, "REPLCONF listening-port 1\r\nREPLCONF capa eof\r\nPING\r\n", 3)
		otherClientUnaffected(t, tp, 2)
	})
	for _, cmd := range []string{"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"} {
		t.Run(cmd+" from a client that is not subscribed answers as Redis, over RESP2", func(t *testing.T) {
			sameAsRedis(t, tp, cmd+" a b c\r\n"+cmd+"\r\nPING\r\n", 5)
			otherClientUnaffected(t, tp, 2)
		})
		t.Run(cmd+" from a client that is not subscribed answers as Redis, over RESP3", func(t *testing.T) {
			script := "HELLO 3\r\n" + cmd + " a b\r\n" + cmd + "\r\nPING\r\n"
			direct, proxied := rawTo(t, tp.Redis.Addr), tp.raw(t)
			direct.send(script)
			proxied.send(script)
			direct.wire() // HELLO: the connection ids differ
			proxied.wire()
			want, got := direct.replies(4), proxied.replies(4)
			if strings.Join(got, "") != strings.Join(want, "") {
				t.Fatalf("through respguard %q, Redis directly %q", got, want)
			}
			otherClientUnaffected(t, tp, 3)
		})
	}
	t.Run("UNSUBSCRIBE from a subscribed client still reaches its subscription", func(t *testing.T) {
		a := tp.raw(t)
		a.send("SUBSCRIBE news\r\n")
		a.wire()
		a.send("UNSUBSCRIBE news\r\n")
		if got := a.wire(); got != "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n" {
			t.Fatalf("got %q", got)
		}
		otherClientUnaffected(t, tp, 2)
	})
}

func TestCommandModel(t *testing.T) {
	m := newCommandModel(policy.BuiltinCommands())
	cases := []struct {
		args      string
		shareable bool
		kind      kind
	}{
		{"GET k", true, kindForward},
		{"EVAL x 0", true, kindForward},
		{"client list", false, kindLocal},
		{"CLIENT KILL ID 1", false, kindLocal},
		{"PUBLISH ch m", true, kindForward},
		{"replconf ack 0", false, kindReplconf},
		{"UNSUBSCRIBE a", false, kindUnsubscribe},
		{"SUBSCRIBE a", false, kindSubscribe},
		{"BLPOP k 0", false, kindBlocking},
		{"CLIENT REPLY OFF", false, kindLocal},
		{"CLIENT TRACKING ON", false, kindClient},
		{"CLIENT NO-EVICT ON", false, kindLocal},
		{"READONLY", false, kindIsolated},
		{"SCRIPT KILL", false, kindControl},
		{"script load x", true, kindForward},
		{"CLIENT UNPAUSE", false, kindLocal},
		{"SHUTDOWN", false, kindControl},
		{"PSYNC ? -1", false, kindReplicate},
		{"SOMEMODULE.CMD x", false, kindUnknown},
	}
	for _, c := range cases {
		t.Run(c.args, func(t *testing.T) {
			var args [][]byte
			for _, f := range strings.Fields(c.args) {
				args = append(args, []byte(f))
			}
			var buf [32]byte
			cls := m.classify(lowerName(buf[:], args[0]), args)
			if cls.shareable() != c.shareable || cls.kind != c.kind {
				t.Fatalf("shareable=%v kind=%d, want %v %d", cls.shareable(), cls.kind, c.shareable, c.kind)
			}
		})
	}
	t.Run("classifying allocates nothing", func(t *testing.T) {
		args := [][]byte{[]byte("CLIENT"), []byte("GETNAME")}
		var buf [32]byte
		if n := testing.AllocsPerRun(100, func() { m.classify(lowerName(buf[:], args[0]), args) }); n != 0 {
			t.Fatalf("%v allocations", n)
		}
	})
}

func TestStateChangesInsideMulti(t *testing.T) {
	// One dedicated connection: the next client gets the very connection
	// the transaction ran on.
	tp := startProxy(t, func(c *Config, p *pool.Config) { p.MaxConns = 1 })
	ctx := ctxT(t)
	nextPinnedClientIsClean := func(t *testing.T) {
		t.Helper()
		c := tp.client(t, 2)
		cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "clean", "1", 0)
			p.HSet(ctx, "cleanh", "f", "v")
			p.HGetAll(ctx, "cleanh")
			return nil
		})
		if err != nil || len(cmds) != 3 {
			t.Fatalf("next client's transaction: %v, %v", cmds, err)
		}
		if m := cmds[2].(*redis.MapStringStringCmd).Val(); m["f"] != "v" {
			t.Fatalf("HGETALL = %v", m)
		}
	}
	for _, cmd := range []string{"SUBSCRIBE ch", "PSUBSCRIBE p*", "HELLO 3", "CLIENT REPLY OFF", "CLIENT TRACKING ON", "REPLCONF ACK 0"} {
		t.Run(cmd+" inside MULTI is refused and aborts the transaction", func(t *testing.T) {
			a := tp.raw(t)
			a.send("MULTI\r\nSET instate 1\r\n" + cmd + "\r\nEXEC\r\nGET instate\r\n")
			got := a.replies(5)
			if got[0] != "+OK\r\n" || got[1] != "+QUEUED\r\n" || !strings.HasPrefix(got[2], "-ERR respguard:") ||
				got[3] != "-"+policy.ExecAbortText+"\r\n" || got[4] != "$-1\r\n" {
				t.Fatalf("replies %q", got)
			}
			nextPinnedClientIsClean(t)
		})
	}
	t.Run("SELECT inside MULTI takes effect when EXEC runs", func(t *testing.T) {
		a := tp.raw(t)
		a.send("MULTI\r\nSELECT 3\r\nSET indb3 yes\r\nEXEC\r\nSET after 1\r\n")
		got := a.replies(5)
		if got[3] != "*2\r\n+OK\r\n+OK\r\n" || got[4] != "+OK\r\n" {
			t.Fatalf("replies %q", got)
		}
		d3 := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, DB: 3})
		defer d3.Close()
		if n := d3.Exists(ctx, "indb3", "after").Val(); n != 2 {
			t.Fatalf("db 3 has %d of the keys, want 2", n)
		}
		nextPinnedClientIsClean(t)
		if n := tp.direct(t).Exists(ctx, "clean").Val(); n != 1 {
			t.Fatal("the next client's transaction did not run in db 0")
		}
	})
	t.Run("SELECT inside a MULTI that a WATCH aborts changes nothing", func(t *testing.T) {
		a := tp.raw(t)
		a.send("WATCH w\r\n")
		a.wire()
		tp.direct(t).Set(ctx, "w", "changed", 0)
		a.send("MULTI\r\nSELECT 4\r\nEXEC\r\nSET stay0 1\r\n")
		got := a.replies(4)
		if got[2] != "*-1\r\n" {
			t.Fatalf("replies %q", got)
		}
		if n := tp.direct(t).Exists(ctx, "stay0").Val(); n != 1 {
			t.Fatal("after an aborted EXEC the client left db 0")
		}
	})
	t.Run("CLIENT SETNAME and GETNAME inside MULTI answer QUEUED and take their places in EXEC's array", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT SETNAME before\r\nMULTI\r\nCLIENT GETNAME\r\nSET txname 1\r\nCLIENT SETNAME after\r\n"+
			"CLIENT GETNAME\r\nCLIENT SETNAME bad\x01name\r\nINCR txname\r\nEXEC\r\nCLIENT GETNAME\r\n", 10)
		sameAsRedis(t, tp, "MULTI\r\nCLIENT SETNAME only\r\nEXEC\r\nCLIENT GETNAME\r\n", 4)
		sameAsRedis(t, tp, "MULTI\r\nCLIENT SETNAME x\r\nSELECT 2\r\nSET indb2 1\r\nEXEC\r\nDBSIZE\r\n", 6)
	})
	t.Run("AUTH inside MULTI answers QUEUED and its result takes its place in EXEC's array", func(t *testing.T) {
		sameAsRedis(t, tp, "MULTI\r\nAUTH foo\r\nPING\r\nAUTH default anything\r\nAUTH nosuchuser pw\r\nEXEC\r\nPING\r\n", 7)
	})
	t.Run("UNSUBSCRIBE inside MULTI from a client with no subscription answers as Redis", func(t *testing.T) {
		// Redis counts commands, not replies, in EXEC's array: the second
		// channel's reply follows as if it were one more element.
		sameAsRedis(t, tp, "MULTI\r\nUNSUBSCRIBE a b\r\nPUNSUBSCRIBE\r\nPING\r\nEXEC\r\nPING\r\n", 7)
		direct, proxied := rawTo(t, tp.Redis.Addr), tp.raw(t)
		for _, c := range []*rawConn{direct, proxied} {
			c.send("HELLO 3\r\nMULTI\r\nSUNSUBSCRIBE x y\r\nEXEC\r\nPING\r\n")
			c.wire() // HELLO: the connection ids differ
		}
		if want, got := direct.replies(5), proxied.replies(5); strings.Join(got, "") != strings.Join(want, "") {
			t.Fatalf("through respguard %q, Redis directly %q", got, want)
		}
	})
	t.Run("a CLIENT SETNAME queued in a MULTI that a WATCH aborts changes nothing", func(t *testing.T) {
		a := tp.raw(t)
		a.send("CLIENT SETNAME kept\r\nWATCH wn\r\n")
		a.replies(2)
		tp.direct(t).Set(ctx, "wn", "changed", 0)
		a.send("MULTI\r\nCLIENT SETNAME lost\r\nEXEC\r\nCLIENT GETNAME\r\n")
		if got := a.replies(4); got[2] != "*-1\r\n" || got[3] != "$4\r\nkept\r\n" {
			t.Fatalf("replies %q", got)
		}
	})
	t.Run("an invalid SELECT inside MULTI is answered in EXEC's array, as by Redis", func(t *testing.T) {
		sameAsRedis(t, tp, "MULTI\r\nSELECT 99\r\nSELECT x\r\nEXEC\r\nPING\r\n", 5)
	})
	t.Run("the last SELECT Redis accepts inside MULTI sets the db", func(t *testing.T) {
		for db := range 4 {
			c := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, DB: db})
			defer c.Close()
			if err := c.Set(ctx, "whichdb", db, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, script := range []string{
			"MULTI\r\nSELECT 01\r\nEXEC\r\nGET whichdb\r\n",
			"MULTI\r\nSELECT 1\r\nSELECT 02\r\nEXEC\r\nGET whichdb\r\n",
			"MULTI\r\nSELECT +1\r\nSELECT 2\r\nSELECT -0\r\nEXEC\r\nGET whichdb\r\n",
			"MULTI\r\nSELECT 3\r\nSELECT 1\r\nSELECT 99\r\nEXEC\r\nGET whichdb\r\n",
			"MULTI\r\nCLIENT SETNAME n\r\nSELECT 2\r\nSELECT 4294967297\r\nEXEC\r\nGET whichdb\r\n",
			"MULTI\r\nSELECT 3\r\nCLIENT SETNAME n\r\nSELECT 01\r\nEXEC\r\nGET whichdb\r\n",
		} {
			sameAsRedis(t, tp, script, strings.Count(script, "\n"))
		}
	})
}

// A SELECT respguard finds valid can still fail in EXEC's array (here:
// Redis re-checks ACLs when EXEC runs); its element decides, not the check
// made when it was queued.
func TestSelectRefusedInsideExecLeavesTheDb(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	rc := tp.raw(t)
	rc.send("MULTI\r\nSELECT 1\r\n")
	expectLines(t, rc, "+OK", "+QUEUED")
	if err := tp.direct(t).Do(ctx, "ACL", "SETUSER", "default", "-select").Err(); err != nil {
		t.Fatal(err)
	}
	rc.send("EXEC\r\nSET z 1\r\n")
	got := rc.replies(2)
	if !strings.HasPrefix(got[0], "*1\r\n-NOPERM ") || got[1] != "+OK\r\n" {
		t.Fatalf("replies %q", got)
	}
	if n := tp.direct(t).Exists(ctx, "z").Val(); n != 1 {
		t.Fatal("after a SELECT refused inside EXEC the client left db 0")
	}
}

func TestTransactionsMatchRedis(t *testing.T) {
	rs := redistest.Start(t)
	// The same user in Redis's own ACL and in respguard's policy.
	if _, err := redistest.Do(rs.Addr, "ACL", "SETUSER", "noexec", "on", ">pw", "~*", "+@all", "-exec"); err != nil {
		t.Fatal(err)
	}
	pol := newPolicy(t, policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all", "noexec": "on >pw ~* +@all -exec"}})
	grd := newGuard(t, guard.Config{RequireTTL: []string{"session:*"}})
	tp := startProxyWith(t, rs, func(c *Config, p *pool.Config) { p.MaxConns = 1 }, Options{Policy: pol, Guard: grd})
	t.Run("an EXEC the user may not run discards the transaction", func(t *testing.T) {
		sameAsRedis(t, tp, "AUTH noexec pw\r\nMULTI\r\nSET txk 1\r\nEXEC\r\nGET txk\r\nEXEC\r\nPING\r\n", 7)
	})
	t.Run("an AUTH queued inside MULTI changes the user when EXEC runs", func(t *testing.T) {
		sameAsRedis(t, tp, "MULTI\r\nAUTH noexec pw\r\nEXEC\r\nMULTI\r\nPING\r\nEXEC\r\nACL WHOAMI\r\n", 7)
	})
	t.Run("an EXEC with arguments discards the transaction", func(t *testing.T) {
		sameAsRedis(t, tp, "MULTI\r\nSET txk 1\r\nEXEC foo\r\nGET txk\r\nEXEC\r\n", 5)
	})
	t.Run("an unknown command inside MULTI aborts the transaction", func(t *testing.T) {
		sameAsRedis(t, tp, "MULTI\r\nSET txk 1\r\nNOSUCHCOMMAND\r\nEXEC\r\nGET txk\r\n", 5)
	})
	t.Run("a guardrail refusal inside MULTI aborts the transaction", func(t *testing.T) {
		a := tp.raw(t)
		a.send("MULTI\r\nSET plain 1\r\nSET session:1 v\r\nEXEC\r\nGET plain\r\n")
		got := a.replies(5)
		if got[1] != "+QUEUED\r\n" || !strings.HasPrefix(got[2], "-") || got[3] != "-"+policy.ExecAbortText+"\r\n" || got[4] != "$-1\r\n" {
			t.Fatalf("replies %q", got)
		}
	})
	t.Run("EXEC without MULTI keeps the watches, as in Redis", func(t *testing.T) {
		a := tp.raw(t)
		a.send("WATCH wk\r\nEXEC\r\n")
		a.replies(2)
		tp.direct(t).Set(ctxT(t), "wk", "x", 0)
		a.send("MULTI\r\nSET wk mine\r\nEXEC\r\n")
		if got := a.replies(3); got[2] != "*-1\r\n" {
			t.Fatalf("replies %q; the watch was lost", got)
		}
	})
}

func TestClientReplyCoversRespguardsOwnReplies(t *testing.T) {
	rs := redistest.Start(t)
	if _, err := redistest.Do(rs.Addr, "ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-flushall"); err != nil {
		t.Fatal(err)
	}
	pol := newPolicy(t, policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all", "app": "on >pw ~* +@all -flushall"}})
	tp := startProxyWith(t, rs, nil, Options{Policy: pol})
	t.Run("OFF, SKIP and ON over local, denied and forwarded replies", func(t *testing.T) {
		sameAsRedis(t, tp, "AUTH app pw\r\nCLIENT REPLY OFF\r\nFLUSHALL\r\nPING\r\nCLIENT REPLY SKIP\r\nCLIENT GETNAME\r\n"+
			"CLIENT REPLY ON\r\nCLIENT REPLY SKIP\r\nFLUSHALL\r\nECHO one\r\nCLIENT REPLY SKIP\r\nPING\r\nCLIENT GETNAME\r\n"+
			"CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nCLIENT REPLY foo\r\nECHO two\r\n", 6)
	})
	t.Run("SKIP applies to the next command whether it is answered locally or by Redis", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT REPLY SKIP\r\nCLIENT SETNAME x\r\nCLIENT GETNAME\r\nCLIENT REPLY SKIP\r\nGET k\r\nECHO last\r\n", 2)
	})
	t.Run("RESET turns replies back on and answers under OFF", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT REPLY OFF\r\nRESET\r\nPING\r\n", 2)
	})
	t.Run("RESET answers under OFF inside MULTI", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT REPLY OFF\r\nMULTI\r\nSET k v\r\nRESET\r\nPING\r\n", 2)
	})
	t.Run("RESET answers under OFF while subscribed", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT REPLY OFF\r\nSUBSCRIBE ch\r\nRESET\r\nPING\r\n", 3)
	})
	t.Run("a SKIP still skips RESET's reply", func(t *testing.T) {
		sameAsRedis(t, tp, "CLIENT REPLY SKIP\r\nRESET\r\nPING\r\n", 1)
	})
}

func TestControlCommandsDoNotQueueBehindWhatTheyControl(t *testing.T) {
	rs := redistest.Start(t, "--busy-reply-threshold", "100")
	tp := startProxyFor(t, rs, func(c *Config, p *pool.Config) { p.SharedConns = 1 })
	ctx := ctxT(t)
	busy := func() bool {
		_, err := redistest.Do(rs.Addr, "PING")
		return err != nil && strings.HasPrefix(err.Error(), "BUSY")
	}
	t.Run("SCRIPT KILL ends a busy script within a second, and other clients' PINGs answer", func(t *testing.T) {
		a := tp.raw(t)
		a.send("EVAL \"while true do end\" 0\r\n")
		pollUntil(t, 10*time.Second, "the script to run", busy)
		c := tp.raw(t)
		c.send("PING\r\n") // behind the script on the shared connection
		b := tp.client(t, 2)
		start := time.Now()
		if err := b.Do(ctx, "SCRIPT", "KILL").Err(); err != nil {
			t.Fatalf("SCRIPT KILL: %v", err)
		}
		if got := a.line(); !strings.Contains(got, "killed") {
			t.Fatalf("the script's client got %q", got)
		}
		took := time.Since(start)
		t.Logf("the script was killed %v after SCRIPT KILL", took)
		if took > time.Second {
			t.Fatalf("the script was killed %v after SCRIPT KILL", took)
		}
		if got := c.line(); got != "+PONG" && !strings.HasPrefix(got, "-BUSY") {
			t.Fatalf("the other client's PING = %q", got)
		}
		if err := tp.client(t, 2).Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after the kill: %v", err)
		}
	})
	t.Run("a write held by Redis paused from a direct client does not hold reads behind it", func(t *testing.T) {
		if _, err := redistest.Do(rs.Addr, "CLIENT", "PAUSE", "100000", "WRITE"); err != nil {
			t.Fatal(err)
		}
		w := tp.raw(t)
		sent := time.Now()
		w.send("SET paused:k v\r\n")
		pollUntil(t, 10*time.Second, "the write to be held", func() bool {
			info, err := redistest.Do(rs.Addr, "INFO", "clients")
			return err == nil && strings.Contains(info, "blocked_clients:1")
		})
		// Reads are not paused: another client's GET must not wait behind
		// the held write on the shared connection once the pool sees it
		// held (no progress for StallAfter: a wall-clock bound, not an event).
		time.Sleep(time.Until(sent.Add(2 * pool.DefaultStallAfter)))
		start := time.Now()
		r := tp.raw(t)
		r.send("GET paused:k\r\n")
		if got := r.line(); got != "$-1" {
			t.Fatalf("another client's GET = %q", got)
		}
		t.Logf("a read answered %v after a write was held on the shared connection", time.Since(start))
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("a read waited %v behind a held write", took)
		}
		if _, err := redistest.Do(rs.Addr, "CLIENT", "UNPAUSE"); err != nil {
			t.Fatalf("CLIENT UNPAUSE: %v", err)
		}
		if got := w.line(); got != "+OK" {
			t.Fatalf("the held write got %q", got)
		}
		if v := tp.direct(t).Get(ctx, "paused:k").Val(); v != "v" {
			t.Fatalf("value %q", v)
		}
	})
}

func TestCommandModelInClusterMode(t *testing.T) {
	rc := redistest.StartCluster(t, 2, 0, "--busy-reply-threshold", "100")
	tp := startClusterProxy(t, rc, nil, Options{})
	ctx := ctxT(t)
	t.Run("UNSUBSCRIBE and REPLCONF ACK from an ordinary client leave the routes in step", func(t *testing.T) {
		a := tp.raw(t)
		a.send("SUNSUBSCRIBE a b\r\nREPLCONF ACK 0\r\nCLIENT REPLY SKIP\r\nECHO skipped\r\nECHO mine\r\n")
		got := a.replies(3)
		want := []string{"*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:0\r\n", "*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n", "$4\r\nmine\r\n"}
		if strings.Join(got, "") != strings.Join(want, "") {
			t.Fatalf("replies %q, want %q", got, want)
		}
	})
	t.Run("CLIENT SETNAME and GETNAME inside MULTI take their places in EXEC's array", func(t *testing.T) {
		a := tp.raw(t)
		a.send("MULTI\r\nCLIENT GETNAME\r\nPING\r\nCLIENT SETNAME n1\r\nSET {a}k 1\r\nCLIENT GETNAME\r\nEXEC\r\n" +
			"MULTI\r\nCLIENT SETNAME n2\r\nEXEC\r\nCLIENT GETNAME\r\n")
		got := a.replies(11)
		if got[6] != "*5\r\n$-1\r\n+PONG\r\n+OK\r\n+OK\r\n$2\r\nn1\r\n" || got[9] != "*1\r\n+OK\r\n" || got[10] != "$2\r\nn2\r\n" {
			t.Fatalf("replies %q", got)
		}
	})
	t.Run("SCRIPT KILL reaches the node running a busy script", func(t *testing.T) {
		node := rc.Primaries()[1]
		a := rawTo(t, node.Addr)
		a.send("EVAL \"while true do end\" 0\r\n")
		pollUntil(t, 10*time.Second, "the script to run", func() bool {
			_, err := redistest.Do(node.Addr, "PING")
			return err != nil && strings.HasPrefix(err.Error(), "BUSY")
		})
		if v, err := tp.client(t, 2).Do(ctx, "SCRIPT", "KILL").Result(); err != nil || v != "OK" {
			t.Fatalf("SCRIPT KILL = %v, %v", v, err)
		}
		if got := a.line(); !strings.Contains(got, "killed") {
			t.Fatalf("the script's client got %q", got)
		}
	})
}

func TestShutdownNosaveReachesABusyServer(t *testing.T) {
	rs := redistest.Start(t, "--busy-reply-threshold", "100")
	tp := startProxyFor(t, rs, func(c *Config, p *pool.Config) { p.SharedConns = 1 })
	a := tp.raw(t)
	a.send("EVAL \"while true do end\" 0\r\n")
	pollUntil(t, 10*time.Second, "the script to run", func() bool {
		_, err := redistest.Do(rs.Addr, "PING")
		return err != nil && strings.HasPrefix(err.Error(), "BUSY")
	})
	b := tp.raw(t)
	b.send("SHUTDOWN NOSAVE\r\n")
	took := pollUntil(t, 10*time.Second, "Redis to shut down", func() bool {
		_, err := redistest.Do(rs.Addr, "PING")
		return err != nil && !strings.HasPrefix(err.Error(), "BUSY")
	})
	t.Logf("Redis was down %v after SHUTDOWN NOSAVE through respguard", took)
}
