package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

func TestTransactions(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("MULTI/EXEC runs atomically over RESP%d", proto), func(t *testing.T) {
			c := tp.client(t, proto)
			key := fmt.Sprintf("tx%d", proto)
			cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "1", 0)
				p.Incr(ctx, key)
				return nil
			})
			if err != nil || cmds[1].(*redis.IntCmd).Val() != 2 {
				t.Fatalf("tx = %v, %v", cmds, err)
			}
		})
	}
	t.Run("WATCH aborts EXEC when another client changes the key", func(t *testing.T) {
		c := tp.client(t, 2)
		other := tp.client(t, 3)
		c.Set(ctx, "watched", "0", 0)
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			if err := other.Set(ctx, "watched", "changed", 0).Err(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "watched", "mine", 0)
				return nil
			})
			return err
		}, "watched")
		if err != redis.TxFailedErr {
			t.Fatalf("err = %v, want TxFailedErr", err)
		}
		if v := c.Get(ctx, "watched").Val(); v != "changed" {
			t.Fatalf("value = %q", v)
		}
	})
	t.Run("DISCARD drops queued commands and the client goes back to shared connections", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("MULTI\r\nSET d 1\r\nDISCARD\r\nGET d\r\nEXEC\r\n")
		for _, want := range []string{"+OK", "+QUEUED", "+OK", "$-1", "-ERR EXEC without MULTI"} {
			if got := rc.line(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	})
}

func TestClientLeavingMidStateLeaksNothing(t *testing.T) {
	// One dedicated connection, so the next client must get the same one.
	tp := startProxy(t, func(c *Config, p *pool.Config) { p.MaxConns = 1 })
	ctx := ctxT(t)
	t.Run("a client that leaves inside MULTI leaves no queued commands behind", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("MULTI\r\nSET leaked 1\r\n")
		rc.line()
		rc.line()
		rc.Close()
		c := tp.client(t, 2)
		cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "fresh", "1", 0)
			return nil
		})
		if err != nil || len(cmds) != 1 {
			t.Fatalf("next transaction: %v %v", cmds, err)
		}
		if n := tp.direct(t).Exists(ctx, "leaked").Val(); n != 0 {
			t.Fatal("the abandoned transaction's command ran")
		}
	})
	t.Run("a client that leaves during BLPOP 0 does not steal a later element", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("BLPOP jobs 0\r\n")
		waitRedisBlocked(t, tp)
		rc.Close()
		// Once the proxy has seen the client go, Redis no longer has it blocked.
		waitFor(t, func() bool { return strings.Contains(tp.direct(t).Info(ctx, "clients").Val(), "blocked_clients:0") })
		c := tp.client(t, 2)
		tp.direct(t).RPush(ctx, "jobs", "job-1")
		got, err := c.BLPop(ctx, 5*time.Second, "jobs").Result()
		if err != nil || got[1] != "job-1" {
			t.Fatalf("BLPOP = %v, %v", got, err)
		}
	})
}

func TestBlockingCommandsDoNotBlockOtherClients(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	blocked := tp.client(t, 2)
	other := tp.client(t, 2)
	res := make(chan []string, 1)
	go func() { res <- blocked.BLPop(ctx, 10*time.Second, "queue").Val() }()
	waitRedisBlocked(t, tp)
	for i := range 100 { // the shared connections keep flowing meanwhile
		if err := other.Set(ctx, "k", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	other.RPush(ctx, "queue", "item")
	if got := <-res; len(got) != 2 || got[1] != "item" {
		t.Fatalf("BLPOP = %v", got)
	}
	rc := tp.raw(t)
	rc.send("XREAD BLOCK 50 STREAMS nostream $\r\nPING\r\n")
	for _, want := range []string{"*-1", "+PONG"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestPubSub(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("SUBSCRIBE and PSUBSCRIBE deliver messages over RESP%d", proto), func(t *testing.T) {
			c := tp.client(t, proto)
			ch := fmt.Sprintf("news%d", proto)
			sub := c.Subscribe(ctx, ch)
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sub.PSubscribe(ctx, "alerts.*"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return tp.direct(t).PubSubNumPat(ctx).Val() >= 1 })
			pub := tp.client(t, 2)
			pub.Publish(ctx, ch, "hello")
			pub.Publish(ctx, "alerts.fire", "hot")
			for _, want := range []string{"hello", "hot"} {
				msg, err := sub.ReceiveMessage(ctx)
				if err != nil || msg.Payload != want {
					t.Fatalf("message = %v, %v; want %q", msg, err, want)
				}
			}
			if err := sub.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("RESET ends the subscription and the client continues normally", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("SUBSCRIBE c1\r\n")
		for _, want := range []string{"*3", "$9", "subscribe", "$2", "c1", ":1"} {
			if got := rc.line(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		rc.send("RESET\r\nSET afterreset 1\r\nGET afterreset\r\n")
		for _, want := range []string{"+RESET", "+OK", "$1", "1"} {
			if got := rc.line(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		if n := tp.direct(t).PubSubNumSub(ctx, "c1").Val()["c1"]; n != 0 {
			t.Fatalf("c1 still has %d subscribers", n)
		}
	})
}

func TestMonitorStreamsCommands(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	rc := tp.raw(t)
	rc.send("MONITOR\r\n")
	if got := rc.line(); got != "+OK" {
		t.Fatalf("MONITOR = %q", got)
	}
	tp.client(t, 2).Set(ctx, "monitored", "1", 0)
	for {
		if line := rc.line(); strings.Contains(line, `"monitored"`) {
			break
		}
	}
}

// A reply respguard makes itself (CLIENT GETNAME's) waits for the replies
// streamed before it, and the marker it waits behind does not show.
func TestMonitorRepliesKeepTheirOrder(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	rc := tp.raw(t)
	rc.send("MONITOR\r\nCLIENT GETNAME\r\nPING mine\r\n")
	for _, want := range []string{"+OK", "$-1", "$4", "mine"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	tp.client(t, 2).Set(ctx, "monitored", "1", 0)
	monitorShowsNoMarker(t, rc)
}

// The blocked BLPOP's timeout comes before CLIENT GETNAME's reply, which
// respguard makes itself, as from Redis.
func TestPubSubLocalRepliesWaitForStreamedOnes(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("HELLO 3\r\n")
	for rc.line() != "*0" { // HELLO's map; modules is last
	}
	rc.send("SUBSCRIBE ordered\r\nBLPOP ordered:none 0.05\r\nCLIENT GETNAME\r\n")
	want := []string{">3", "$9", "subscribe", "$7", "ordered", ":1", "_", "_"}
	for _, w := range want {
		if got := rc.line(); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func TestClientTrackingInvalidationsArriveAsPushes(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	rc := tp.raw(t)
	rc.send("HELLO 3\r\n")
	if got := rc.line(); got != "%7" {
		t.Fatalf("HELLO 3 = %q", got)
	}
	for rc.line() != "*0" { // the rest of HELLO's map; modules is last
	}
	rc.send("CLIENT TRACKING ON\r\nGET tracked\r\n")
	for _, want := range []string{"+OK", "_"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	tp.client(t, 2).Set(ctx, "tracked", "new", 0)
	for _, want := range []string{">2", "$10", "invalidate", "*1", "$7", "tracked"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestClientReplyOff(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("CLIENT REPLY OFF\r\nSET quiet 1\r\nCLIENT REPLY ON\r\nGET quiet\r\n")
	for _, want := range []string{"+OK", "$1", "1"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestConnectionScopedCommandsAnsweredLocally(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("CLIENT GETNAME\r\nCLIENT SETNAME worker-1\r\nCLIENT GETNAME\r\nCLIENT SETNAME \"bad name\"\r\nAUTH pw\r\nAUTH nobody pw\r\nAUTH default pw\r\nQUIT\r\n")
	for _, want := range []string{
		"$-1", "+OK", "$8", "worker-1",
		"-ERR Client names cannot contain spaces, newlines or special characters.",
		"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
		"-WRONGPASS invalid username-password pair or user is disabled.",
		"+OK", "+OK",
	} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	rc.expectClosed()
}

// waitFor polls cond (each poll is a real round trip or state read) for up to 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTrackingClientIsClosedWhenItsConnectionDies(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("HELLO 3\r\n")
	for rc.line() != "*0" { // HELLO's map; modules is last
	}
	rc.send("CLIENT TRACKING ON\r\nGET k\r\n")
	expectLines(t, rc, "+OK", "_")
	tp.Redis.Stop()                                                  // invalidations for k can no longer arrive
	waitFor(t, func() bool { return tp.Pool.Stats().Acquired == 0 }) // the proxy saw the connection die
	tp.Redis.Restart()
	rc.send("GET k\r\n")
	if got := rc.line(); !strings.HasPrefix(got, "-ERR upstream unavailable") {
		t.Fatalf("got %q, want the upstream error", got)
	}
	rc.expectClosed()
}

func TestMovingToADedicatedConnectionKeepsExecutionOrder(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("MULTI\r\nEXEC\r\n") // leaves an idle dedicated connection in the pool
	expectLines(t, rc, "+OK", "*0")
	waitFor(t, func() bool { return tp.Pool.Stats().Idle == 1 })
	// A large SET keeps the shared connection busy; the INCR behind it must
	// still run before the transaction sent next on the dedicated connection.
	big := strings.Repeat("v", 32<<20)
	// 32 MiB each way under -race on a busy machine: more than the raw
	// connection's default 20 s for the whole exchange.
	_ = rc.SetDeadline(time.Now().Add(2 * time.Minute))
	rc.send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\nINCR x\r\nWATCH x\r\nMULTI\r\nGET x\r\nEXEC\r\n", len(big), big))
	expectLines(t, rc, "+OK", ":1", "+OK", "+OK", "+QUEUED", "*1")
	if got := rc.line(); got != "$1" {
		t.Fatalf("GET x inside EXEC = %q, want $1 (the transaction overtook the INCR before it)", got)
	}
}

// hello3 switches rc to RESP3 and reads HELLO's map.
func hello3(t *testing.T, rc *rawConn) {
	t.Helper()
	rc.send("HELLO 3\r\n")
	for rc.line() != "*0" { // modules is last
	}
}

// clientField returns a field of the client's CLIENT INFO line, read
// through rc (RESP2, not subscribed).
func clientField(t *testing.T, rc *rawConn, field string) string {
	t.Helper()
	rc.send("CLIENT INFO\r\n")
	rc.line() // the bulk's length
	info := rc.line()
	rc.line() // the bulk ends with "\n", then CRLF
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, field+"="); ok {
			return v
		}
	}
	t.Fatalf("CLIENT INFO has no %s", field)
	return ""
}

// SELECT from a RESP3 subscriber is answered by respguard and applied to
// its dedicated connection behind the commands before it: the commands
// after it, while subscribed and once the stream has ended, run in the new
// db, as on a direct connection.
func TestSelectWhileSubscribedMovesTheClientToTheDB(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	rc := tp.raw(t)
	hello3(t, rc)
	rc.send("SUBSCRIBE a\r\nSET before x\r\nSELECT 1\r\nSET during x\r\nUNSUBSCRIBE\r\nSET after x\r\n")
	expectLines(t, rc, ">3", "$9", "subscribe", "$1", "a", ":1", "+OK", "+OK", "+OK",
		">3", "$11", "unsubscribe", "$1", "a", ":0", "+OK")
	db1 := redis.NewClient(&redis.Options{Addr: tp.Redis.Addr, DB: 1, DisableIdentity: true})
	defer db1.Close()
	if n := tp.direct(t).Exists(ctx, "before").Val(); n != 1 {
		t.Fatal("SET before SELECT 1 did not write db 0")
	}
	if n := db1.Exists(ctx, "during", "after").Val(); n != 2 {
		t.Fatalf("SETs after SELECT 1: %d of 2 keys in db 1", n)
	}
	rc.send("HELLO 2\r\n")
	for rc.line() != "*0" {
	}
	if db := clientField(t, rc, "db"); db != "1" {
		t.Fatalf("CLIENT INFO db=%s, want 1", db)
	}
	rc.send("SUBSCRIBE a\r\nUNSUBSCRIBE\r\nSELECT 0\r\nSET back x\r\n")
	expectLines(t, rc, "*3", "$9", "subscribe", "$1", "a", ":1", "*3", "$11", "unsubscribe", "$1", "a", ":0", "+OK", "+OK")
	if n := tp.direct(t).Exists(ctx, "back").Val(); n != 1 {
		t.Fatal("SET after SELECT 0 did not write db 0")
	}
}

// HELLO from a RESP3 subscriber is answered by respguard (its own client
// id) and switches the dedicated connection's protocol: once the stream
// ends the client gets RESP2 replies, as from Redis.
func TestHelloWhileSubscribedChangesTheProtocol(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("CLIENT ID\r\n")
	id := rc.line()
	hello3(t, rc)
	rc.send("SUBSCRIBE a\r\nHELLO 2\r\nUNSUBSCRIBE\r\n")
	expectLines(t, rc, ">3", "$9", "subscribe", "$1", "a", ":1", "*14")
	for rc.line() != "id" {
	}
	if got := rc.line(); got != id {
		t.Fatalf("HELLO's id = %s, want the respguard client's %s", got, id)
	}
	for rc.line() != "*0" {
	}
	expectLines(t, rc, "*3", "$11", "unsubscribe", "$1", "a", ":0")
	rc.send("HSET h f v\r\nHGETALL h\r\n")
	expectLines(t, rc, ":1", "*2", "$1", "f", "$1", "v")
	if resp := clientField(t, rc, "resp"); resp != "2" {
		t.Fatalf("CLIENT INFO resp=%s, want 2", resp)
	}
}

// CLIENT REPLY is kept by respguard while a client streams too, with
// Redis's effect (the replies to its commands are muted, pushes and
// subscription replies are not), and the connection it streams on keeps
// answering respguard's markers: nothing hangs, before or after the stream
// ends. The wanted lines are Redis 7.0's to the same commands (less the
// MONITOR line of CLIENT REPLY ON, which respguard answers itself).
func TestClientReplyWhileStreamingMutesRepliesNotPushes(t *testing.T) {
	sub, unsub := []string{">3", "$9", "subscribe", "$1", "a", ":1"}, []string{">3", "$11", "unsubscribe", "$1", "a", ":0"}
	for _, tc := range []struct {
		name  string
		resp3 bool
		cmds  string
		want  []string
	}{
		{"OFF, then ON once the stream ended", true,
			"SUBSCRIBE a\r\nCLIENT REPLY OFF\r\nGET k\r\nUNSUBSCRIBE\r\nGET k\r\nCLIENT REPLY ON\r\nPING\r\n",
			slices.Concat(sub, unsub, []string{"+OK", "+PONG"})},
		{"OFF and ON while subscribed", true,
			"SUBSCRIBE a\r\nCLIENT REPLY OFF\r\nPING y\r\nCLIENT REPLY ON\r\nUNSUBSCRIBE\r\nPING\r\n",
			slices.Concat(sub, []string{"+OK"}, unsub, []string{"+PONG"})},
		{"SKIP skips the next reply only", true,
			"SUBSCRIBE a\r\nCLIENT REPLY SKIP\r\nGET k\r\nPING x\r\nUNSUBSCRIBE\r\nPING\r\n",
			slices.Concat(sub, []string{"$1", "x"}, unsub, []string{"+PONG"})},
		{"OFF before a RESP2 SUBSCRIBE leaves the subscription's replies", false,
			"CLIENT REPLY OFF\r\nSUBSCRIBE a\r\nUNSUBSCRIBE\r\nCLIENT REPLY ON\r\nPING\r\n",
			[]string{"*3", "$9", "subscribe", "$1", "a", ":1", "*3", "$11", "unsubscribe", "$1", "a", ":0", "+OK", "+PONG"}},
		{"OFF mutes MONITOR and the replies under it", false,
			"CLIENT REPLY OFF\r\nMONITOR\r\nPING x\r\nCLIENT REPLY ON\r\nPING y\r\n",
			[]string{"+OK", "$1", "y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startProxy(t, nil)
			rc := tp.raw(t)
			if tc.resp3 {
				hello3(t, rc)
			}
			rc.send(tc.cmds)
			expectLines(t, rc, tc.want...)
		})
	}
}

// A RESP3 subscriber that also runs MONITOR does not see respguard's
// markers in its MONITOR output, as a client that only monitors does not.
func TestMonitorWhileSubscribedHidesMarkers(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	hello3(t, rc)
	rc.send("SUBSCRIBE a\r\nMONITOR\r\nPING mine\r\n")
	expectLines(t, rc, ">3", "$9", "subscribe", "$1", "a", ":1", "+OK", "$4", "mine")
	tp.client(t, 2).Set(ctxT(t), "monitored", "1", 0)
	monitorShowsNoMarker(t, rc)
}

// monitorShowsNoMarker reads rc's MONITOR stream up to the line showing a
// command on key "monitored": none before it may show respguard's marker.
func monitorShowsNoMarker(t *testing.T, rc *rawConn) {
	t.Helper()
	for {
		line := rc.line()
		if strings.Contains(line, "respguard-marker") {
			t.Fatalf("the monitor shows respguard's own marker: %q", line)
		}
		if strings.Contains(line, `"monitored"`) {
			return
		}
	}
}

// SELECT from a monitoring client: respguard's +OK in its place, then
// Redis's MONITOR line showing the SELECT (its own reply dropped), as a
// direct client sees them; the commands after it run in the new db.
func TestSelectWhileMonitoringKeepsTheMonitorStream(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("MONITOR\r\nSELECT 1\r\nPING mine\r\n")
	expectLines(t, rc, "+OK", "+OK")
	if got := rc.line(); !strings.HasSuffix(got, `"SELECT" "1"`) {
		t.Fatalf("after SELECT's reply: %q, want its MONITOR line", got)
	}
	expectLines(t, rc, "$4", "mine")
	if got := rc.line(); !strings.Contains(got, `[1 `) || !strings.HasSuffix(got, `"PING" "mine"`) {
		t.Fatalf("after PING's reply: %q, want its MONITOR line in db 1", got)
	}
}

// SELECT inside MULTI from a subscriber is refused and the transaction
// aborts (EXEC's reply streams, so whether it ran could not be known); the
// client stays in its db. The DISCARD respguard sends upstream leaves no
// reply in the stream, and EXECABORT comes after the replies streamed for
// the commands queued before it.
func TestSelectInsideMultiWhileSubscribedIsRefused(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	hello3(t, rc)
	rc.send("SUBSCRIBE a\r\nMULTI\r\nSET k queued\r\n")
	expectLines(t, rc, ">3", "$9", "subscribe", "$1", "a", ":1", "+OK", "+QUEUED")
	rc.send("SELECT 1\r\nEXEC\r\nUNSUBSCRIBE\r\nSET k x\r\n")
	expectLines(t, rc,
		"-ERR respguard: 'select' is not supported inside MULTI: it changes the connection's state",
		"-EXECABORT Transaction discarded because of previous errors.",
		">3", "$11", "unsubscribe", "$1", "a", ":0", "+OK")
	if v := tp.direct(t).Get(ctxT(t), "k").Val(); v != "x" {
		t.Fatalf("k = %q in db 0: the SET after the aborted transaction did not write db 0, or the transaction ran", v)
	}
}

// A subscriber's transaction whose EXEC is refused by the policy is
// discarded upstream: the refusal comes after the streamed replies to the
// commands queued before it, and no reply of respguard's DISCARD follows.
func TestDeniedExecWhileSubscribedLeavesNoStrayReply(t *testing.T) {
	pol := newPolicy(t, policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all -exec"}})
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: pol})
	rc := tp.raw(t)
	hello3(t, rc)
	rc.send("SUBSCRIBE a\r\nMULTI\r\nSET k queued\r\nGET k\r\nEXEC\r\nPING after\r\n")
	expectLines(t, rc, ">3", "$9", "subscribe", "$1", "a", ":1", "+OK", "+QUEUED", "+QUEUED")
	if got := rc.line(); !strings.HasPrefix(got, "-") {
		t.Fatalf("EXEC's reply = %q, want the policy's refusal", got)
	}
	expectLines(t, rc, "$5", "after")
	if n := tp.direct(t).Exists(ctxT(t), "k").Val(); n != 0 {
		t.Fatal("the transaction whose EXEC was refused ran")
	}
}

// connectionsReceived reads Redis's total_connections_received (INFO stats)
// at addr over a connection of its own, which it counts too.
func connectionsReceived(t testing.TB, addr string) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, PoolSize: 1})
	defer c.Close()
	info, err := c.Info(ctxT(t), "stats").Result()
	if err != nil {
		t.Fatalf("INFO stats: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("total_connections_received %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no total_connections_received in %q", info)
	return 0
}

func TestRefusedConnectionStateCommandsReuseTheirConnection(t *testing.T) {
	tp := startProxy(t, nil)
	direct := tp.direct(t)
	ctx := ctxT(t)
	for _, cmd := range []string{"READONLY", "READWRITE", "ASKING", "CLIENT NO-TOUCH ON", "CLIENT SETINFO LIB-NAME x"} {
		t.Run(cmd+", refused by a Redis not in cluster mode, leaves its connection reusable", func(t *testing.T) {
			var args []any
			for _, a := range strings.Fields(cmd) {
				args = append(args, a)
			}
			want, err := direct.Do(ctx, args...).Result()
			if err == nil {
				t.Fatalf("direct %s = %v: want Redis to refuse it", cmd, want)
			}
			rc := tp.raw(t)
			rc.send("PING\r\n") // the shared connection is dialed before counting
			if got := rc.line(); got != "+PONG" {
				t.Fatalf("PING = %q", got)
			}
			before := connectionsReceived(t, tp.Redis.Addr)
			const rounds = 200
			for range rounds {
				rc.send(cmd + "\r\nPING\r\n")
				if got := rc.line(); got != "-"+err.Error() {
					t.Fatalf("%s = %q, want %q as from Redis", cmd, got, "-"+err.Error())
				}
				if got := rc.line(); got != "+PONG" {
					t.Fatalf("PING = %q", got)
				}
			}
			// One for the dedicated connection, one for the count itself.
			if grew := connectionsReceived(t, tp.Redis.Addr) - before; grew > 2 {
				t.Fatalf("Redis received %d connections over %d refused %s: a new one per command", grew, rounds, cmd)
			}
		})
	}
}

func TestReadonlyInClusterModeStillDestroysItsConnection(t *testing.T) {
	rc := redistest.StartCluster(t, 1, 0)
	tp := startClusterProxy(t, rc, nil, Options{})
	node := redis.NewClient(&redis.Options{Addr: rc.Primaries()[0].Addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { node.Close() })
	c := tp.raw(t)
	for range 10 {
		c.send("READONLY\r\nPING\r\n")
		if got := c.line(); got != "+OK" {
			t.Fatalf("READONLY = %q, want +OK from a cluster node", got)
		}
		if got := c.line(); got != "+PONG" {
			t.Fatalf("PING = %q", got)
		}
	}
	// Each READONLY that Redis ran left its connection in READONLY mode
	// (flag r), which respguard does not track: once the client lets it go,
	// it is destroyed, never pooled for anyone else.
	pollUntil(t, 10*time.Second, "no connection in READONLY mode left open", func() bool {
		for _, line := range strings.Split(node.ClientList(ctxT(t)).Val(), "\n") {
			if _, f := clientFields(line); strings.Contains(f["flags"], "r") {
				return false
			}
		}
		return true
	})
}

func TestAClientChurningDedicatedConnectionsIsSlowedToTheChurnRate(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("PING\r\n")
	if got := rc.line(); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	before := connectionsReceived(t, tp.Redis.Addr)
	start := time.Now()
	const rounds = 3 * churnBurst
	for range rounds {
		// The UNSUBSCRIBE that leaves no subscription destroys the
		// connection the SUBSCRIBE took (its state cannot be undone).
		rc.send("SUBSCRIBE ch\r\nUNSUBSCRIBE ch\r\n")
		for _, want := range []string{"*3", "$9", "subscribe", "$2", "ch", ":1", "*3", "$11", "unsubscribe", "$2", "ch", ":0"} {
			if got := rc.line(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
	elapsed := time.Since(start)
	grew := connectionsReceived(t, tp.Redis.Addr) - before
	// One dial per round, as many as the budget allows: the burst, the
	// rate over the time taken, one more for each end of the interval (the
	// budget's clock ticks in whole intervals), the first connection and
	// the count's own.
	if limit := churnBurst + int(elapsed.Seconds()*churnRate) + 4; grew > limit {
		t.Fatalf("Redis received %d connections in %s: over the bound of %d", grew, elapsed, limit)
	}
	if grew < rounds {
		t.Fatalf("Redis received %d connections over %d subscriptions: the connections were reused", grew, rounds)
	}
}

func TestChurnBudget(t *testing.T) {
	t0 := churnEpoch.Add(time.Minute)
	t.Run("a new client may cost a burst of connections at once", func(t *testing.T) {
		var b churnBudget
		for range churnBurst {
			if d := b.delay(t0); d != 0 {
				t.Fatalf("delay %s within the burst", d)
			}
			b.spend(t0)
		}
	})
	t.Run("past the burst each connection waits for its share of the rate", func(t *testing.T) {
		var b churnBudget
		for range churnBurst + 1 {
			b.spend(t0)
		}
		if d, want := b.delay(t0), time.Second/churnRate; d != want {
			t.Fatalf("delay %s, want %s", d, want)
		}
		if d := b.delay(t0.Add(time.Second / churnRate)); d != 0 {
			t.Fatalf("delay %s once the share has passed", d)
		}
	})
	t.Run("an idle client earns back at most the burst", func(t *testing.T) {
		var b churnBudget
		b.spend(t0)
		later := t0.Add(time.Hour)
		for range churnBurst {
			b.spend(later)
		}
		if d := b.delay(later); d != 0 {
			t.Fatalf("delay %s within the burst earned back", d)
		}
		if b.spend(later); b.delay(later) == 0 {
			t.Fatal("no delay past the burst after an hour idle")
		}
	})
}

func TestAClientLoopingControlCommandsIsSlowedToTheChurnRate(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	before := connectionsReceived(t, tp.Redis.Addr)
	start := time.Now()
	const rounds = 3 * churnBurst
	for range rounds {
		rc.send("SCRIPT KILL\r\n") // each on a connection of its own
		if got := rc.line(); got != "-NOTBUSY No scripts in execution right now." {
			t.Fatalf("SCRIPT KILL = %q", got)
		}
	}
	elapsed := time.Since(start)
	grew := connectionsReceived(t, tp.Redis.Addr) - before
	if limit := churnBurst + int(elapsed.Seconds()*churnRate) + 4; grew > limit { // as above
		t.Fatalf("Redis received %d connections in %s: over the bound of %d", grew, elapsed, limit)
	}
}
