package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/proxy/resp"
)

// readFrame reads one whole RESP2 or RESP3 reply and returns its bytes.
func readFrame(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return line, err
	}
	if len(line) < 3 {
		return line, fmt.Errorf("short line %q", line)
	}
	n, _ := strconv.Atoi(line[1 : len(line)-2])
	switch line[0] {
	case '$', '=', '!':
		if n < 0 {
			return line, nil
		}
		b := make([]byte, n+2)
		_, err := io.ReadFull(r, b)
		return line + string(b), err
	case '*', '>', '~':
	case '%':
		n *= 2
	default:
		return line, nil
	}
	out := line
	for range n {
		elem, err := readFrame(r)
		out += elem
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// subscribeReply is Redis's reply to (un)subscribing from one channel or
// pattern, count being how many the client still holds.
func subscribeReply(proto int, kind, name string, count int) string {
	head := "*3\r\n"
	if proto == 3 {
		head = ">3\r\n"
	}
	return fmt.Sprintf("%s$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n", head, len(kind), kind, len(name), name, count)
}

// unsubscribeAllCase is a way in and out of Pub/Sub in one pipeline, with
// the replies it gets before the commands pipelined behind it.
type unsubscribeAllCase struct {
	name   string
	proto  int
	cmds   string   // subscribing and unsubscribing, inline
	output []string // their replies
}

func unsubscribeAllCases() []unsubscribeAllCase {
	var cases []unsubscribeAllCase
	for _, proto := range []int{2, 3} {
		p := func(name, cmds string, output ...string) {
			cases = append(cases, unsubscribeAllCase{fmt.Sprintf("%s over RESP%d", name, proto), proto, cmds, output})
		}
		p("UNSUBSCRIBE from all", "SUBSCRIBE ch\r\nUNSUBSCRIBE\r\n",
			subscribeReply(proto, "subscribe", "ch", 1), subscribeReply(proto, "unsubscribe", "ch", 0))
		p("UNSUBSCRIBE by name", "SUBSCRIBE ch\r\nUNSUBSCRIBE ch\r\n",
			subscribeReply(proto, "subscribe", "ch", 1), subscribeReply(proto, "unsubscribe", "ch", 0))
		p("PUNSUBSCRIBE from all", "PSUBSCRIBE p*\r\nPUNSUBSCRIBE\r\n",
			subscribeReply(proto, "psubscribe", "p*", 1), subscribeReply(proto, "punsubscribe", "p*", 0))
		p("several channels, then each by name", "SUBSCRIBE a b c\r\nUNSUBSCRIBE c b a\r\n",
			subscribeReply(proto, "subscribe", "a", 1), subscribeReply(proto, "subscribe", "b", 2), subscribeReply(proto, "subscribe", "c", 3),
			subscribeReply(proto, "unsubscribe", "c", 2), subscribeReply(proto, "unsubscribe", "b", 1), subscribeReply(proto, "unsubscribe", "a", 0))
	}
	return cases
}

// TestCommandsPipelinedBehindLeavingPubSubAreAnswered: commands a client
// pipelines behind the UNSUBSCRIBE that leaves Pub/Sub are answered in
// order, whatever its dedicated connection does meanwhile. GET's reply is
// many times the upstream reader's buffer, and the client sends PING once
// that reply has started to arrive: respguard then routes a command while
// the connection that ended the stream is still reading GET's reply. Many
// clients at once, several rounds each.
func TestCommandsPipelinedBehindLeavingPubSubAreAnswered(t *testing.T) {
	pol := newPolicy(t, policy.Config{Users: map[string]string{"u": "on >pw allcommands -flushall allkeys allchannels"}})
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Policy: pol})
	value := strings.Repeat("v", 1<<20)
	if _, err := redistest.Do(tp.Redis.Addr, "SET", "big", value); err != nil {
		t.Fatal(err)
	}
	const clients, rounds = 4, 5
	for _, tc := range unsubscribeAllCases() {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					if err := leavePubSubRounds(tp.Addr, tc, value, rounds); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		})
	}
}

// leavePubSubRounds runs tc rounds times on one client connection of addr.
func leavePubSubRounds(addr string, tc unsubscribeAllCase, value string, rounds int) error {
	rc, err := dialRaw(addr)
	if err != nil {
		return err
	}
	defer rc.Close()
	hello := resp.AppendCommandStrings(nil, "HELLO", strconv.Itoa(tc.proto), "AUTH", "u", "pw")
	if _, err := rc.Write(hello); err != nil {
		return err
	}
	if _, err := readFrame(rc.r); err != nil {
		return fmt.Errorf("HELLO: %w", err)
	}
	pinged := "+PONG\r\n"
	for round := range rounds {
		if _, err := io.WriteString(rc, tc.cmds+"GET big\r\nFLUSHALL\r\nNOSUCH a\r\n"); err != nil {
			return err
		}
		for _, want := range tc.output {
			if got, err := readFrame(rc.r); got != want || err != nil {
				return fmt.Errorf("round %d: got %q (%v), want %q", round, got, err, want)
			}
		}
		head, err := rc.r.ReadString('\n')
		if want := "$" + strconv.Itoa(len(value)) + "\r\n"; head != want || err != nil {
			return fmt.Errorf("round %d: GET: got %q (%v), want %q", round, head, err, want)
		}
		if _, err := io.WriteString(rc, "PING\r\n"); err != nil { // routed while GET's reply streams in
			return err
		}
		body := make([]byte, len(value)+2)
		if _, err := io.ReadFull(rc.r, body); err != nil || string(body) != value+"\r\n" {
			return fmt.Errorf("round %d: GET's value cut off: %v", round, err)
		}
		for _, want := range []string{"-NOPERM this user has no permissions to run the 'flushall' command", "-NOPERM this user has no permissions to run the 'nosuch' command", pinged} {
			if got, err := readFrame(rc.r); !strings.HasPrefix(got, want) || err != nil {
				return fmt.Errorf("round %d: got %q (%v), want %q...", round, got, err, want)
			}
		}
	}
	return nil
}

// dialRaw dials addr for a test that runs off the test goroutine.
func dialRaw(addr string) (*rawConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// TestLeavingPubSubGivesTheConnectionBack: once the reply to the
// UNSUBSCRIBE that leaves Pub/Sub is in, the client's dedicated connection
// goes (destroyed: it streamed), without waiting for the client's next
// command; the client then counts as idle again.
func TestLeavingPubSubGivesTheConnectionBack(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("SUBSCRIBE ch\r\nUNSUBSCRIBE\r\n")
	for _, want := range []string{subscribeReply(2, "subscribe", "ch", 1), subscribeReply(2, "unsubscribe", "ch", 0)} {
		if got, err := readFrame(rc.r); got != want || err != nil {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	pollUntil(t, 10*time.Second, "the dedicated connection given back", func() bool {
		return tp.Pool.Stats().Acquired == 0
	})
	rc.send("PING\r\n")
	if got := rc.line(); got != "+PONG" {
		t.Fatalf("PING: %q", got)
	}
}

// TestQuitWaitsForRepliesOnTheDedicatedConnection: QUIT pipelined behind
// commands still in flight on the client's dedicated connection comes after
// their replies, as in Redis, instead of the connection going (and the
// replies with it) when the session ends.
func TestQuitWaitsForRepliesOnTheDedicatedConnection(t *testing.T) {
	tp := startProxy(t, nil)
	value := strings.Repeat("v", 1<<20)
	if _, err := redistest.Do(tp.Redis.Addr, "SET", "big", value); err != nil {
		t.Fatal(err)
	}
	bulk := "$" + strconv.Itoa(len(value)) + "\r\n" + value + "\r\n"
	for _, tc := range []struct {
		name, cmds string
		want       []string
	}{
		{"after leaving Pub/Sub", "SUBSCRIBE ch\r\nUNSUBSCRIBE\r\nGET big\r\nQUIT\r\n",
			[]string{subscribeReply(2, "subscribe", "ch", 1), subscribeReply(2, "unsubscribe", "ch", 0), bulk, "+OK\r\n"}},
		{"after a transaction", "MULTI\r\nGET big\r\nEXEC\r\nQUIT\r\n",
			[]string{"+OK\r\n", "+QUEUED\r\n", "*1\r\n" + bulk, "+OK\r\n"}},
		{"after a blocking command", "BLPOP nolist 0.05\r\nGET big\r\nQUIT\r\n",
			[]string{"*-1\r\n", bulk, "+OK\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := tp.raw(t)
			rc.send(tc.cmds)
			for i, want := range tc.want {
				if got, err := readFrame(rc.r); got != want || err != nil {
					t.Fatalf("reply %d: got %.60q... (%v), want %.60q...", i, got, err, want)
				}
			}
			rc.expectClosed()
		})
	}
}

// TestQuitBehindABlockedCommandEndsWhenTheClientLeaves: a client that sent
// QUIT behind a command blocked upstream and then closes its connection is
// let go, with its dedicated connection, instead of waiting for a reply
// nobody will read.
func TestQuitBehindABlockedCommandEndsWhenTheClientLeaves(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("BLPOP nolist 0\r\nQUIT\r\n")
	waitRedisBlocked(t, tp)
	rc.Close()
	direct, ctx := tp.direct(t), ctxT(t)
	pollUntil(t, 10*time.Second, "the blocked command ended upstream", func() bool {
		return strings.Contains(direct.Info(ctx, "clients").Val(), "blocked_clients:0")
	})
	pollUntil(t, 10*time.Second, "the session ended", func() bool {
		tp.Server.mu.Lock()
		defer tp.Server.mu.Unlock()
		return len(tp.Server.sessions) == 0
	})
}
