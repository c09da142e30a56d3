package sentinel

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

const masterName = "mymaster"

// deployment is one primary, one replica and sentinels monitoring them.
type deployment struct {
	primary, replica *redistest.Server
	sentinels        *redistest.Sentinels
}

// startDeployment starts a primary, its replica and n sentinels; conf are
// lines added to each sentinel's configuration.
func startDeployment(t *testing.T, n int, conf ...string) deployment {
	t.Helper()
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	return deployment{primary: primary, replica: replica, sentinels: redistest.StartSentinels(t, primary, n, masterName, conf...)}
}

// testLogger logs through t; the test must outlive every goroutine using it.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// run starts w.Run with an onChange that calls also (when not nil) and
// reports each new address on the returned channel. stop ends Run and waits
// for it; it also runs when the test ends.
func run(t *testing.T, w *Watcher, also func(string)) (changes <-chan string, stop func()) {
	ch := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func(addr string) {
			if also != nil {
				also(addr)
			}
			ch <- addr
		})
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return ch, stop
}

// expectChange waits (bounded) for the next address on changes.
func expectChange(t *testing.T, changes <-chan string, want string, within time.Duration) {
	t.Helper()
	select {
	case got := <-changes:
		if got != want {
			t.Fatalf("onChange(%s), want %s", got, want)
		}
	case <-time.After(within):
		t.Fatalf("onChange not called within %s", within)
	}
}

// checks returns how many re-checks w has completed.
func (w *Watcher) completedChecks() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checks
}

// pollUntil polls cond (bounded by within) and fails the test with what.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// load is clients sending ECHOs through a pool's shared connections, one
// command at a time each, counting replies that are theirs, error replies,
// and replies that are neither (another client's: the bug to catch).
type load struct {
	oks, errs, wrong atomic.Int64
	firstWrong       atomic.Value // string
	cancel           context.CancelFunc
	wg               sync.WaitGroup
}

func startLoad(t *testing.T, pl *pool.Pool, clients int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for i := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.client(ctx, t, pl, i)
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

// client sends ECHO <its id>-<seq> until ctx is done.
func (l *load) client(ctx context.Context, t *testing.T, pl *pool.Pool, id int) {
	c := &echoClient{replies: make(chan string, 1)}
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		token := fmt.Sprintf("client%d-%d", id, seq)
		pipe, err := pl.Shared(ctx, 0, 2, uint64(id))
		if err == nil {
			err = pipe.Send(c, seq, nil, [][]byte{[]byte("ECHO"), []byte(token)})
		}
		if err != nil {
			l.errs.Add(1)
			pace(ctx) // the breaker fails fast: don't spin
			continue
		}
		select {
		case reply := <-c.replies:
			l.count(reply, token)
		case <-time.After(10 * time.Second):
			t.Errorf("client %d: no reply to %s within 10s", id, token)
			return
		}
	}
}

func (l *load) count(reply, token string) {
	switch {
	case reply == fmt.Sprintf("$%d\r\n%s\r\n", len(token), token):
		l.oks.Add(1)
	case strings.HasPrefix(reply, "-ERR upstream unavailable"):
		l.errs.Add(1)
	default:
		l.wrong.Add(1)
		l.firstWrong.CompareAndSwap(nil, fmt.Sprintf("sent %s, got %q", token, reply))
	}
}

func pace(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Millisecond):
	}
}

// echoClient is a pool.Target with one command in flight at a time.
type echoClient struct {
	cur     []byte
	replies chan string
}

func (c *echoClient) Deliver(_ uint64, p []byte, last bool) {
	c.cur = append(c.cur, p...)
	if last {
		c.replies <- string(c.cur)
		c.cur = nil
	}
}
func (c *echoClient) DeliverPush([]byte, bool) {}
func (c *echoClient) Abort(err error)          { c.replies <- "abort: " + err.Error() }

func itoa(n int) string { return strconv.Itoa(n) }
