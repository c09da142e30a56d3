package proxy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// clientID asks c for its CLIENT ID.
func clientID(t *testing.T, c *rawConn) int64 {
	t.Helper()
	c.send("CLIENT ID\r\n")
	id, ok := c.reply().(int64)
	if !ok {
		t.Fatal("CLIENT ID did not answer an integer")
	}
	return id
}

// waitBlocked polls CLIENT LIST ID over observer until client id shows the b flag.
func waitBlocked(t *testing.T, observer *rawConn, id int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		observer.send(fmt.Sprintf("CLIENT LIST ID %d\r\n", id))
		line, _ := observer.reply().(string)
		if _, vals := clientFields(line); vals["flags"] == "b" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %d never blocked: %q", id, line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClients polls CLIENT LIST over c until it lists n clients.
func waitClients(t *testing.T, c *rawConn, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.send("CLIENT LIST\r\n")
		text, _ := c.reply().(string)
		if strings.Count(text, "\n") == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CLIENT LIST never listed %d clients:\n%s", n, text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientKillClosesRespguardSessions(t *testing.T) {
	tp := startProxy(t, nil)
	killer := tp.raw(t)

	t.Run("the old form names a client by address: +OK and it is closed", func(t *testing.T) {
		victim := tp.raw(t)
		victim.send("PING\r\n")
		victim.reply()
		killer.send("CLIENT KILL " + victim.LocalAddr().String() + "\r\n")
		if v := killer.reply(); v != "OK" {
			t.Fatalf("CLIENT KILL addr: %v", v)
		}
		victim.expectClosed()
	})
	t.Run("ID kills that client, blocked in BLPOP, and its upstream BLPOP goes with it", func(t *testing.T) {
		victim := tp.raw(t)
		id := clientID(t, victim)
		victim.send("BLPOP killq 0\r\n")
		waitBlocked(t, killer, id)
		killer.send(fmt.Sprintf("CLIENT KILL ID %d\r\n", id))
		if v := killer.reply(); v != int64(1) {
			t.Fatalf("CLIENT KILL ID: %v", v)
		}
		victim.expectClosed()
		killer.send("RPUSH killq v\r\n")
		killer.reply()
		deadline := time.Now().Add(10 * time.Second)
		for { // the element stays: no dead BLPOP takes it
			killer.send("LLEN killq\r\n")
			if v := killer.reply(); v == int64(1) {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("LLEN killq = %v: the killed client's BLPOP still ran", v)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("TYPE pubsub kills the subscribers only", func(t *testing.T) {
		sub, other := tp.raw(t), tp.raw(t)
		sub.send("SUBSCRIBE ch\r\n")
		sub.reply()
		killer.send("CLIENT KILL TYPE pubsub\r\n")
		if v := killer.reply(); v != int64(1) {
			t.Fatalf("CLIENT KILL TYPE pubsub: %v", v)
		}
		sub.expectClosed()
		other.send("PING\r\n")
		if v := other.reply(); v != "PONG" {
			t.Fatalf("a normal client after the kill: %v", v)
		}
	})
	t.Run("LADDR and USER kill every other client; SKIPME no kills the caller after its reply", func(t *testing.T) {
		a, b := tp.raw(t), tp.raw(t)
		a.send("PING\r\n")
		b.send("PING\r\n")
		a.reply()
		b.reply()
		waitClients(t, killer, 3) // the earlier subtests' clients have gone
		killer.send("CLIENT KILL MAXAGE 100000\r\n")
		if v := killer.reply(); v != int64(0) {
			t.Fatalf("CLIENT KILL MAXAGE 100000: %v", v)
		}
		killer.send("CLIENT KILL LADDR " + tp.Addr + " USER default\r\n")
		if v := killer.reply(); v != int64(2) {
			t.Fatalf("CLIENT KILL LADDR USER: %v", v)
		}
		a.expectClosed()
		b.expectClosed()
		killer.send(fmt.Sprintf("CLIENT KILL ID %d SKIPME no\r\n", clientID(t, killer)))
		if v := killer.reply(); v != int64(1) {
			t.Fatalf("CLIENT KILL own ID SKIPME no: %v", v)
		}
		killer.expectClosed()
	})
	t.Run("bad arguments and no match get Redis's replies", func(t *testing.T) {
		direct := redistest.Start(t)
		for _, args := range []string{"1.2.3.4:5", "ID 0", "ID 99999", "TYPE foo", "USER nobody", "SKIPME maybe",
			"MAXAGE x", "FOO bar", "ID 1 TYPE", "ADDR 1.2.3.4:5"} {
			via, want := tp.raw(t), rawTo(t, direct.Addr)
			via.send("CLIENT KILL " + args + "\r\n")
			want.send("CLIENT KILL " + args + "\r\n")
			if v, w := via.reply(), want.reply(); v != w {
				t.Errorf("CLIENT KILL %s: %v, Redis: %v", args, v, w)
			}
		}
	})
}

func TestClientKillIsJudgedAsRedisJudgesIt(t *testing.T) {
	tp := startProxy(t, nil)
	tp.Server.SetPolicy(newPolicy(t, policy.Config{Users: map[string]string{
		"default": "on nopass ~* &* +@all -@admin",
		"ops":     "on >ops-pass ~* &* +@all",
	}}))
	victim := tp.raw(t)
	id := clientID(t, victim)
	app := tp.raw(t)
	app.send(fmt.Sprintf("CLIENT KILL ID %d\r\n", id))
	if v, _ := app.reply().(redisError); !strings.HasPrefix(string(v), "NOPERM") {
		t.Fatalf("CLIENT KILL by a user without @admin: %v", v)
	}
	ops := tp.raw(t)
	ops.send(fmt.Sprintf("AUTH ops ops-pass\r\nCLIENT KILL ID %d\r\n", id))
	ops.reply()
	if v := ops.reply(); v != int64(1) {
		t.Fatalf("CLIENT KILL by an admin: %v", v)
	}
	victim.expectClosed()
}

// upstreamBlocked returns the id, in Redis, of the one connection blocked there.
func upstreamBlocked(t *testing.T, tp *testProxy) string {
	t.Helper()
	for _, line := range strings.Split(tp.direct(t).ClientList(ctxT(t)).Val(), "\n") {
		if _, vals := clientFields(line); vals["flags"] == "b" {
			return vals["id"]
		}
	}
	t.Fatal("no connection is blocked in Redis")
	return ""
}

func TestClientUnblockUnblocksTheNamedRespguardClient(t *testing.T) {
	tp := startProxy(t, nil)
	blocked, other := tp.raw(t), tp.raw(t)
	id := clientID(t, blocked)
	for _, tc := range []struct{ how, want string }{
		{"", "<nil>"},
		{" TIMEOUT", "<nil>"},
		{" ERROR", "UNBLOCKED client unblocked via CLIENT UNBLOCK"},
	} {
		blocked.send("BLPOP unblockq 0\r\n")
		waitBlocked(t, other, id)
		upstreamID := upstreamBlocked(t, tp)
		other.send(fmt.Sprintf("CLIENT UNBLOCK %d%s\r\n", id, tc.how))
		if v := other.reply(); v != int64(1) {
			t.Fatalf("CLIENT UNBLOCK%s: %v", tc.how, v)
		}
		if v := blocked.reply(); fmt.Sprint(v) != tc.want {
			t.Fatalf("BLPOP unblocked with%s answered %v, want %s", tc.how, v, tc.want)
		}
		// That connection is not reused: no later unblock can reach another client there.
		deadline := time.Now().Add(10 * time.Second)
		for strings.Contains(tp.direct(t).ClientList(ctxT(t)).Val(), "id="+upstreamID+" ") {
			if time.Now().After(deadline) {
				t.Fatalf("upstream connection %s, unblocked, is still open", upstreamID)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Run("a client that is not blocked, or no client, gets 0; bad arguments get Redis's errors", func(t *testing.T) {
		direct := redistest.Start(t)
		for _, args := range []string{fmt.Sprint(id), "99999", "x", "1 sideways", fmt.Sprint(id) + " ERROR"} {
			via, want := tp.raw(t), rawTo(t, direct.Addr)
			via.send("CLIENT UNBLOCK " + args + "\r\n")
			want.send("CLIENT UNBLOCK " + args + "\r\n")
			if v, w := via.reply(), want.reply(); v != w {
				t.Errorf("CLIENT UNBLOCK %s: %v, Redis: %v", args, v, w)
			}
		}
	})
}

// unblockSeen is what other clients see of a client blocked with a PING
// pipelined behind its blocking command, and what becomes of it when one
// of them unblocks it.
type unblockSeen struct {
	flags, cmd, blockedClients string   // while blocked: CLIENT LIST's flags and cmd, INFO's blocked_clients
	unblock                    string   // CLIENT UNBLOCK's reply
	replies                    []string // the blocked client's, in wire form
	flagsAfter, cmdAfter       string   // CLIENT LIST's once the client has its replies
}

// seeUnblock plays the scenario of unblockSeen against addr, whose
// upstream (the Redis that runs the blocking command) is upstream: setup
// (whose replies are skipped), then the blocking command with a PING
// behind it, then CLIENT UNBLOCK id how from another client.
func seeUnblock(t *testing.T, addr, upstream, setup string, setupReplies int, blocking, how string) unblockSeen {
	t.Helper()
	blocked, other := rawTo(t, addr), rawTo(t, addr)
	id := clientID(t, blocked)
	blocked.send(setup)
	blocked.replies(setupReplies)
	blocked.send(blocking + "\r\nPING\r\n")
	pollUntil(t, 10*time.Second, "a client blocked in Redis", func() bool {
		v, err := redistest.Do(upstream, "INFO", "clients")
		return err == nil && strings.Contains(v, "blocked_clients:1\r\n")
	})
	var seen unblockSeen
	list := func() (flags, cmd string) {
		other.send(fmt.Sprintf("CLIENT LIST ID %d\r\n", id))
		line, _ := other.reply().(string)
		_, vals := clientFields(line)
		return vals["flags"], vals["cmd"]
	}
	seen.flags, seen.cmd = list()
	other.send("INFO clients\r\n")
	info, _ := other.reply().(string)
	seen.blockedClients = infoFields(info)["blocked_clients"]
	other.send(fmt.Sprintf("CLIENT UNBLOCK %d%s\r\n", id, how))
	if seen.unblock = other.wire(); seen.unblock != ":1\r\n" {
		return seen // still blocked: its replies would never come
	}
	seen.replies = blocked.replies(2)
	seen.flagsAfter, seen.cmdAfter = list()
	return seen
}

func TestClientUnblockReachesAClientWithCommandsPipelinedBehind(t *testing.T) {
	tp := startProxy(t, nil)
	direct := redistest.Start(t)
	for _, setup := range []struct {
		name    string
		cmds    string
		replies int
	}{
		{"", "", 0},
		{"a RESP3 subscriber's ", "HELLO 3\r\nSUBSCRIBE unblock-ch\r\n", 2},
	} {
		for _, blocking := range []string{"BLPOP unblock-l 0", "XREAD BLOCK 0 STREAMS unblock-s $", "BLMOVE unblock-a unblock-b LEFT RIGHT 0", "WAIT 1 0"} {
			for _, how := range []string{"", " TIMEOUT", " ERROR"} {
				t.Run(setup.name+blocking+how, func(t *testing.T) {
					via := seeUnblock(t, tp.Addr, tp.Redis.Addr, setup.cmds, setup.replies, blocking, how)
					want := seeUnblock(t, direct.Addr, direct.Addr, setup.cmds, setup.replies, blocking, how)
					if !reflect.DeepEqual(via, want) {
						t.Errorf("through respguard: %+q\nRedis:             %+q", via, want)
					}
				})
			}
		}
	}
}

// exhaustedPool starts a proxy with one dedicated connection, taken by the
// returned client in MULTI; execEmpty gives it back.
func exhaustedPool(t *testing.T) (*testProxy, *rawConn) {
	t.Helper()
	tp := startProxy(t, func(_ *Config, p *pool.Config) { p.MaxConns, p.AcquireTimeout = 1, time.Hour })
	holder := tp.raw(t)
	holder.send("MULTI\r\n")
	if got := holder.line(); got != "+OK" {
		t.Fatalf("MULTI: %q", got)
	}
	return tp, holder
}

// execEmpty ends the holder's empty transaction.
func execEmpty(t *testing.T, holder *rawConn) {
	t.Helper()
	holder.send("EXEC\r\n")
	if got := holder.line(); got != "*0" {
		t.Fatalf("EXEC: %q", got)
	}
}

// listThenKill has other list the clients, which must answer (the raw
// connection's 20 s deadline fails it if it waits for the pool) and show
// client id, then kill it: its connection c must close.
func listThenKill(t *testing.T, other *rawConn, id int64, c *rawConn) {
	t.Helper()
	other.send("CLIENT LIST\r\n")
	if list, _ := other.reply().(string); !strings.Contains(list, fmt.Sprintf("id=%d ", id)) {
		t.Fatalf("CLIENT LIST while a client waits for the pool: %q", list)
	}
	other.send(fmt.Sprintf("CLIENT KILL ID %d\r\n", id))
	if n, _ := other.reply().(int64); n != 1 {
		t.Fatalf("CLIENT KILL did not kill client %d", id)
	}
	c.expectClosed()
}

func TestAWaitForThePoolHoldsUpNoOtherClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		waitsIn string // on the waiting goroutine's stack
		command func(targetID int64) string
	}{
		{"for its own connection", "(*session).acquire", func(int64) string { return "BLPOP waitq 0" }},
		// The target needs a dedicated connection to receive invalidations:
		// the redirecting client's reader waits for the pool on its behalf.
		{"for a REDIRECT target's", "becomeRedirectTarget", func(id int64) string { return fmt.Sprintf("CLIENT TRACKING ON REDIRECT %d", id) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, holder := exhaustedPool(t)
			target, waiter, other := tp.raw(t), tp.raw(t), tp.raw(t)
			waiterID := clientID(t, waiter)
			waiter.send(tc.command(clientID(t, target)) + "\r\n")
			waiting := func() bool { return goroutineRuns(tc.waitsIn, "puddle") }
			pollUntil(t, 10*time.Second, "a wait for a dedicated connection", waiting)
			listThenKill(t, other, waiterID, waiter)
			pollUntil(t, 10*time.Second, "the killed client to stop waiting for the pool", func() bool { return !waiting() })
			execEmpty(t, holder)
		})
	}
}

func TestAClientThatLeavesWhileWaitingForThePoolHasItsCommandDropped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		waitsIn string // on the waiting goroutine's stack
		command func(targetID int64) string
		// dropped checks, once the holder's transaction is over, that the
		// command had no effect.
		dropped func(t *testing.T, tp *testProxy, holder *rawConn)
	}{
		{"for its own connection", "(*session).acquire", func(int64) string { return "BLPOP leftq 0" },
			func(t *testing.T, tp *testProxy, _ *rawConn) {
				// The BLPOP never reaches Redis: an element pushed now stays.
				ctx, direct := ctxT(t), tp.direct(t)
				if err := direct.LPush(ctx, "leftq", "x").Err(); err != nil {
					t.Fatal(err)
				}
				other := tp.raw(t)
				other.send("PING\r\n") // a round trip through respguard after the push
				if got := other.line(); got != "+PONG" {
					t.Fatalf("PING: %q", got)
				}
				if n := direct.LLen(ctx, "leftq").Val(); n != 1 {
					t.Fatalf("LLEN leftq = %d: a BLPOP of a client that had left took the element", n)
				}
			}},
		{"for a REDIRECT target's", "becomeRedirectTarget", func(id int64) string { return fmt.Sprintf("CLIENT TRACKING ON REDIRECT %d", id) },
			func(t *testing.T, _ *testProxy, holder *rawConn) {
				// The target is not pinned for a client that left: the one
				// connection is free again (the raw connection's 20 s
				// deadline fails a MULTI that waits for it).
				holder.send("MULTI\r\n")
				if got := holder.line(); got != "+OK" {
					t.Fatalf("MULTI: %q", got)
				}
				execEmpty(t, holder)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, holder := exhaustedPool(t)
			target, waiter := tp.raw(t), tp.raw(t)
			waiter.send(tc.command(clientID(t, target)) + "\r\n")
			waiting := func() bool { return goroutineRuns(tc.waitsIn, "puddle") }
			pollUntil(t, 10*time.Second, "a wait for a dedicated connection", waiting)
			waiter.Close()
			pollUntil(t, 10*time.Second, "the wait to end once its client left", func() bool { return !waiting() })
			execEmpty(t, holder)
			tc.dropped(t, tp, holder)
		})
	}
}
