package proxy

// Fault tests: Redis down, killed, restarted or paused under load; clients
// vanishing mid-state; graceful shutdown. The invariant checked throughout:
// every reply a client gets is the right reply to its own command, in order,
// or an error reply; never another client's, never out of order, never a hang.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// faultProxy is a proxy whose shutdown the test controls.
type faultProxy struct {
	*testProxy
	served chan error
	stop   func() // idempotent: Shutdown (5 s), then close the pool
}

// startFaultProxy starts a proxy for addr without probing it first, so the
// upstream may be down. Cleanup stops it if the test did not.
func startFaultProxy(t testing.TB, rs *redistest.Server, addr string, mutate func(*Config, *pool.Config)) *faultProxy {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0"}
	pcfg := pool.Config{Address: addr, RetryBackoff: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg, &pcfg)
	}
	p, err := pool.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(cfg, p, pool.ServerInfo{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{
		testProxy: &testProxy{Addr: l.Addr().String(), Redis: rs, Server: srv, Pool: p},
		served:    make(chan error, 1),
	}
	go func() { fp.served <- srv.Serve(l) }()
	var once sync.Once
	fp.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-fp.served; !errors.Is(err, ErrServerClosed) {
				t.Errorf("serve returned %v", err)
			}
			p.Close()
		})
	}
	t.Cleanup(fp.stop)
	return fp
}

// pollUntil polls cond (each poll a real round trip or a state read) until
// it holds, failing the test after limit.
func pollUntil(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// redisError is an error reply read by readReply.
type redisError string

func (e redisError) Error() string { return string(e) }

// readReply reads one RESP2 reply: string (simple or bulk), int64,
// redisError, nil (null bulk or array) or []any.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, fmt.Errorf("short line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected reply line %q", line)
}

// reply reads one reply from a raw connection.
func (c *rawConn) reply() any {
	c.t.Helper()
	v, err := readReply(c.r)
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return v
}

// isUnavailable reports whether v is the proxy's upstream-failure error reply.
func isUnavailable(v any) bool {
	e, ok := v.(redisError)
	return ok && strings.HasPrefix(string(e), "ERR upstream unavailable: ")
}

func TestUpstreamDown(t *testing.T) {
	t.Run("commands get an upstream unavailable error at once and the proxy serves again after Redis restarts", func(t *testing.T) {
		rs := redistest.Start(t)
		rs.Stop()
		fp := startFaultProxy(t, rs, rs.Addr, nil) // dial timeout 5 s
		rc := fp.raw(t)
		start := time.Now()
		rc.send("SET k v\r\nGET k\r\nMULTI\r\nBLPOP q 0\r\nECHO x\r\n")
		for i := range 5 {
			if v := rc.reply(); !isUnavailable(v) {
				t.Fatalf("reply %d = %#v, want upstream unavailable", i, v)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("5 errors took %s", d)
		}
		t.Logf("5 commands with Redis down answered in %s", time.Since(start))
		c := fp.client(t, 3)
		ctx := ctxT(t)
		if err := c.Echo(ctx, "x").Err(); err == nil || !strings.Contains(err.Error(), "upstream unavailable") {
			t.Fatalf("go-redis ECHO err = %v", err)
		}

		rs.Restart()
		recovery := pollUntil(t, 10*time.Second, "serving after restart", func() bool {
			rc.send("ECHO back\r\n")
			return rc.reply() == "back"
		})
		t.Logf("served again %s after Redis restarted", recovery)
		if v, err := c.Set(ctx, "k", "v", 0).Result(); err != nil || v != "OK" {
			t.Fatalf("SET = %v, %v", v, err)
		}
		if v, err := c.Do(ctx, "BLPOP", "nothing", "0.1").Result(); err != redis.Nil {
			t.Fatalf("BLPOP = %v", v)
		}
	})
	t.Run("an upstream that accepts but never answers costs one dial timeout, then the breaker fails fast", func(t *testing.T) {
		hung, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: the kernel completes handshakes
		if err != nil {
			t.Fatal(err)
		}
		defer hung.Close()
		const dialTimeout = 500 * time.Millisecond
		fp := startFaultProxy(t, nil, hung.Addr().String(), func(_ *Config, p *pool.Config) {
			p.DialTimeout, p.RetryBackoff = dialTimeout, 2*time.Second
		})
		rc := fp.raw(t)
		start := time.Now()
		rc.send("ECHO a\r\n")
		if v := rc.reply(); !isUnavailable(v) {
			t.Fatalf("first reply = %#v", v)
		}
		first := time.Since(start)
		start = time.Now()
		rc.send("ECHO b\r\nECHO c\r\nMULTI\r\n")
		for range 3 {
			if v := rc.reply(); !isUnavailable(v) || !strings.Contains(fmt.Sprint(v), "retrying in") {
				t.Fatalf("reply = %#v, want the breaker's error", v)
			}
		}
		rest := time.Since(start)
		t.Logf("first command failed after %s (dial timeout %s); the next 3 in %s", first, dialTimeout, rest)
		if first < dialTimeout || rest > dialTimeout/2 {
			t.Fatalf("first %s, rest %s: want one dial timeout, then fast failures", first, rest)
		}
	})
}

// TestHungUpstreamCostsOneDialTimeoutAtATime: with an upstream that accepts
// connections but never answers, the breaker lets one dial through per
// backoff; the other clients fail fast instead of each waiting it out.
func TestHungUpstreamCostsOneDialTimeoutAtATime(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	// The hung upstream accepts connections and never answers: every dial
	// respguard makes costs it a full dial timeout. Count the dials rather
	// than timing the replies, so a busy machine cannot change the verdict.
	var dials atomic.Int64
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			held = append(held, c)
		}
	}()
	const dialTimeout, backoff = 300 * time.Millisecond, 50 * time.Millisecond
	fp := startFaultProxy(t, nil, hung.Addr().String(), func(_ *Config, p *pool.Config) {
		p.DialTimeout, p.RetryBackoff = dialTimeout, backoff
	})
	const clients, perClient = 8, 40
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		rc := fp.raw(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				if _, err := rc.Write([]byte("MULTI\r\n")); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				if v, err := readReply(rc.r); err != nil || !isUnavailable(v) {
					t.Errorf("MULTI = %#v, %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// While a probe is dialing, every other caller fails fast: one dial per
	// dial timeout plus backoff, after a first round of at most one per client.
	allowed := int64(clients) + int64(elapsed/(dialTimeout+backoff)) + 2
	t.Logf("%d clients x %d MULTI in %v: %d dials (allowed %d)", clients, perClient, elapsed, dials.Load(), allowed)
	if dials.Load() > allowed {
		t.Fatalf("%d dials in %v; want at most %d (one probe at a time)", dials.Load(), elapsed, allowed)
	}
}

// TestPartialReplyFromDyingUpstream covers an upstream that dies after
// sending part of a reply that had not yet reached the client: the client
// gets an error reply in that slot, not a hang.
func TestPartialReplyFromDyingUpstream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			fakeUpstream(conn)
		}
	}()
	fp := startFaultProxy(t, nil, l.Addr().String(), nil)
	rc := fp.raw(t)
	_ = rc.SetDeadline(time.Now().Add(5 * time.Second))
	rc.send("LRANGE half 0 -1\r\n")
	if v := rc.reply(); !isUnavailable(v) {
		t.Fatalf("reply = %#v, want upstream unavailable", v)
	}
	rc.send("PING\r\n")
	if v := rc.reply(); v != "PONG" {
		t.Fatalf("PING on a new connection = %#v", v)
	}
	l.Close()
	fp.stop() // closes the proxy's connection, ending fakeUpstream
	served.Wait()
}

// fakeUpstream answers HELLO and PING, refuses CONFIG, answers LRANGE with half an array
// and hangs up.
func fakeUpstream(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		v, err := readReply(r) // a multibulk command reads as an array
		if err != nil {
			return
		}
		args, _ := v.([]any)
		if len(args) == 0 {
			return
		}
		switch strings.ToUpper(fmt.Sprint(args[0])) {
		case "HELLO":
			conn.Write([]byte("*0\r\n"))
		case "PING":
			conn.Write([]byte("+PONG\r\n"))
		case "CONFIG": // as a server that has none, or refuses it
			conn.Write([]byte("-ERR unknown command 'CONFIG'\r\n"))
		default:
			conn.Write([]byte("*2\r\n$1\r\na\r\n"))
			return
		}
	}
}

// verifier collects the invariant violations and outcomes of load workers.
type verifier struct {
	oks, errs, drops atomic.Int64
	mu               sync.Mutex
	violations       []string
}

func (v *verifier) violate(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.violations) < 20 {
		v.violations = append(v.violations, fmt.Sprintf(format, args...))
	}
}

func (v *verifier) check(t testing.TB) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.violations {
		t.Error(s)
	}
}

// worker state shared by the raw and go-redis load loops: one client's keys
// and what it last saw, so each reply can be checked against its own request.
type worker struct {
	id       int
	v        *verifier
	iter     int
	lastIncr int64
	errSince bool // an error reply since lastIncr was read
}

type opKind int

const (
	opSet opKind = iota // SET key val, then GET key
	opIncr
	opEcho
)

type op struct {
	kind opKind
	val  string
}

func (w *worker) key() string     { return fmt.Sprintf("fault:%d:k", w.id) }
func (w *worker) counter() string { return fmt.Sprintf("fault:%d:n", w.id) }

// batch returns a random pipeline of operations with fresh unique values.
func (w *worker) batch(rng *rand.Rand) []op {
	ops := make([]op, 1+rng.IntN(8))
	for i := range ops {
		w.iter++
		ops[i] = op{kind: opKind(rng.IntN(3)), val: fmt.Sprintf("w%d-%d", w.id, w.iter)}
	}
	return ops
}

// replyErr classifies an error reply: the proxy's upstream error is allowed,
// anything else is a violation.
func (w *worker) replyErr(e error, what string) {
	w.v.errs.Add(1)
	w.errSince = true
	if !strings.Contains(e.Error(), "upstream unavailable") {
		w.v.violate("worker %d: %s: unexpected error %v", w.id, what, e)
	}
}

func (w *worker) checkSet(o op, set, get any) {
	setOK := false
	switch s := set.(type) {
	case error:
		w.replyErr(s, "SET")
	case string:
		setOK = s == "OK"
		if !setOK {
			w.v.violate("worker %d: SET %s = %q", w.id, o.val, s)
		}
	default:
		w.v.violate("worker %d: SET %s = %#v", w.id, o.val, set)
	}
	switch g := get.(type) {
	case error:
		w.replyErr(g, "GET")
	case nil: // Redis restarted between SET and GET
	case string:
		switch {
		case g == o.val:
			w.v.oks.Add(1)
		case setOK:
			w.v.violate("worker %d: GET after SET %s = %q", w.id, o.val, g)
		case !strings.HasPrefix(g, fmt.Sprintf("w%d-", w.id)):
			w.v.violate("worker %d: GET = %q: another client's value", w.id, g)
		}
	default:
		w.v.violate("worker %d: GET after SET %s = %#v", w.id, o.val, get)
	}
}

func (w *worker) checkIncr(got any) {
	switch n := got.(type) {
	case error:
		w.replyErr(n, "INCR")
	case int64:
		// +1, or 1 after Redis restarted; after an error reply, a command may
		// have run without its reply arriving, so only growth is required.
		if n != w.lastIncr+1 && n != 1 && !(w.errSince && n >= 1) {
			w.v.violate("worker %d: INCR = %d after %d", w.id, n, w.lastIncr)
		}
		w.lastIncr, w.errSince = n, false
		w.v.oks.Add(1)
	default:
		w.v.violate("worker %d: INCR = %#v", w.id, got)
	}
}

func (w *worker) checkEcho(o op, got any) {
	switch s := got.(type) {
	case error:
		w.replyErr(s, "ECHO")
	case string:
		if s != o.val {
			w.v.violate("worker %d: ECHO %s = %q", w.id, o.val, s)
		}
		w.v.oks.Add(1)
	default:
		w.v.violate("worker %d: ECHO %s = %#v", w.id, o.val, got)
	}
}

// runRaw runs random pipelines over raw connections until ctx ends,
// reconnecting when the proxy closes the connection.
func (w *worker) runRaw(ctx context.Context, addr string) {
	rng := rand.New(rand.NewPCG(uint64(w.id), 1))
	for ctx.Err() == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			w.v.violate("worker %d: dial proxy: %v", w.id, err)
			return
		}
		for ctx.Err() == nil && w.rawBatch(conn, bufio.NewReader(conn), rng) {
		}
		conn.Close()
	}
}

// rawBatch sends one pipeline and checks its replies; false means the
// connection is gone.
func (w *worker) rawBatch(conn net.Conn, r *bufio.Reader, rng *rand.Rand) bool {
	ops := w.batch(rng)
	var b strings.Builder
	for _, o := range ops {
		switch o.kind {
		case opSet:
			fmt.Fprintf(&b, "SET %s %s\r\nGET %s\r\n", w.key(), o.val, w.key())
		case opIncr:
			fmt.Fprintf(&b, "INCR %s\r\n", w.counter())
		case opEcho:
			fmt.Fprintf(&b, "ECHO %s\r\n", o.val)
		}
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(b.String())); err != nil {
		w.v.drops.Add(1)
		return false
	}
	read := func() (any, bool) {
		v, err := readReply(r)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				w.v.violate("worker %d: no reply within 20s", w.id)
			}
			w.v.drops.Add(1)
			return nil, false
		}
		if e, ok := v.(redisError); ok {
			return error(e), true
		}
		return v, true
	}
	for _, o := range ops {
		switch o.kind {
		case opSet:
			set, ok1 := read()
			get, ok2 := read()
			if !ok1 || !ok2 {
				return false
			}
			w.checkSet(o, set, get)
		case opIncr:
			v, ok := read()
			if !ok {
				return false
			}
			w.checkIncr(v)
		case opEcho:
			v, ok := read()
			if !ok {
				return false
			}
			w.checkEcho(o, v)
		}
	}
	return true
}

// runGoRedis runs random pipelines through go-redis until ctx ends.
func (w *worker) runGoRedis(ctx context.Context, c *redis.Client) {
	rng := rand.New(rand.NewPCG(uint64(w.id), 2))
	for ctx.Err() == nil {
		ops := w.batch(rng)
		pipe := c.Pipeline()
		cmds := make([][]redis.Cmder, len(ops))
		for i, o := range ops {
			switch o.kind {
			case opSet:
				cmds[i] = []redis.Cmder{pipe.Set(ctx, w.key(), o.val, 0), pipe.Get(ctx, w.key())}
			case opIncr:
				cmds[i] = []redis.Cmder{pipe.Incr(ctx, w.counter())}
			case opEcho:
				cmds[i] = []redis.Cmder{pipe.Echo(ctx, o.val)}
			}
		}
		_, _ = pipe.Exec(ctx)
		if ctx.Err() != nil {
			return
		}
		for i, o := range ops {
			w.checkGoRedis(o, cmds[i])
		}
	}
}

func (w *worker) checkGoRedis(o op, cmds []redis.Cmder) {
	val := func(c redis.Cmder) any {
		err := c.Err()
		var rerr redis.Error
		switch {
		case err == redis.Nil:
			return nil
		case errors.As(err, &rerr):
			return error(rerr)
		case err != nil: // connection-level: the proxy closed it
			w.v.drops.Add(1)
			return errSkip
		}
		switch c := c.(type) {
		case *redis.StatusCmd:
			return c.Val()
		case *redis.StringCmd:
			return c.Val()
		case *redis.IntCmd:
			return c.Val()
		}
		return nil
	}
	vals := make([]any, len(cmds))
	for i, c := range cmds {
		if vals[i] = val(c); vals[i] == errSkip {
			return
		}
	}
	switch o.kind {
	case opSet:
		w.checkSet(o, vals[0], vals[1])
	case opIncr:
		w.checkIncr(vals[0])
	case opEcho:
		w.checkEcho(o, vals[0])
	}
}

var errSkip = errors.New("skip")

// load runs n raw and n go-redis workers against the proxy at addr until stopped.
type load struct {
	v      verifier
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoad(t testing.TB, addr string, n int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{cancel: cancel}
	for i := range 2 * n {
		w := &worker{id: i, v: &ld.v}
		ld.wg.Add(1)
		if i < n {
			go func() { defer ld.wg.Done(); w.runRaw(ctx, addr) }()
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2 + i%2, DisableIdentity: true,
			MaxRetries: -1, PoolSize: 2, ReadTimeout: 20 * time.Second})
		go func() { defer ld.wg.Done(); defer c.Close(); w.runGoRedis(ctx, c) }()
	}
	return ld
}

func (ld *load) stop() { ld.cancel(); ld.wg.Wait() }

// killAndRestart kills Redis under load, waits until clients see errors,
// restarts it and waits until they succeed again; it reports how long
// recovery took.
func killAndRestart(t testing.TB, rs *redistest.Server, v *verifier) (firstErr, recovered time.Duration) {
	t.Helper()
	errs := v.errs.Load()
	rs.Stop()
	firstErr = pollUntil(t, 10*time.Second, "errors after kill", func() bool { return v.errs.Load() > errs })
	// Let clients keep failing for a moment: the breaker's backoff grows.
	errs = v.errs.Load()
	pollUntil(t, 10*time.Second, "more errors while down", func() bool { return v.errs.Load() > errs+50 })
	rs.Restart()
	restarted := time.Now()
	oks := v.oks.Load()
	pollUntil(t, 15*time.Second, "success after restart", func() bool { return v.oks.Load() > oks+50 })
	return firstErr, time.Since(restarted)
}

// redisBusy reports whether Redis at addr leaves a PING unanswered for 50 ms.
func redisBusy(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = c.Write([]byte("PING\r\n"))
	_, err = c.Read(make([]byte, 16))
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func TestRedisKilledUnderLoad(t *testing.T) {
	rs := redistest.Start(t, "--enable-debug-command", "yes")
	fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) { p.SharedConns = 2 })

	t.Run("every reply is the client's own or an error, across kills and restarts", func(t *testing.T) {
		ld := startLoad(t, fp.Addr, 6)
		pollUntil(t, 10*time.Second, "load running", func() bool { return ld.v.oks.Load() > 500 })
		for i := range 3 {
			firstErr, rec := killAndRestart(t, rs, &ld.v)
			t.Logf("kill %d: first client error after %s; >50 successes %s after restart", i, firstErr, rec)
		}
		ld.stop()
		ld.v.check(t)
		t.Logf("%d correct replies, %d error replies, %d connections dropped", ld.v.oks.Load(), ld.v.errs.Load(), ld.v.drops.Load())
	})

	t.Run("commands in flight on a dying shared connection get the error in their own slot", func(t *testing.T) {
		rc := fp.raw(t)
		rc.send("ECHO before\r\n")
		if v := rc.reply(); v != "before" {
			t.Fatalf("reply = %#v", v)
		}
		rc.send("DEBUG SLEEP 5\r\nECHO after\r\n")
		pollUntil(t, 5*time.Second, "Redis busy in DEBUG SLEEP", func() bool { return redisBusy(rs.Addr) })
		start := time.Now()
		rs.Stop() // DEBUG SLEEP and ECHO after are in flight
		for _, what := range []string{"DEBUG SLEEP", "ECHO after"} {
			if v := rc.reply(); !isUnavailable(v) {
				t.Fatalf("%s: reply = %#v, want upstream unavailable", what, v)
			}
		}
		t.Logf("in-flight commands answered %s after the kill", time.Since(start))
		rs.Restart()
		pollUntil(t, 10*time.Second, "serving again", func() bool {
			rc.send("ECHO again\r\n")
			return rc.reply() == "again"
		})
	})

	t.Run("a client whose dedicated connection died is served again once its state ends", func(t *testing.T) {
		ctx := ctxT(t)
		tx := fp.raw(t)
		tx.send("MULTI\r\nSET txk 1\r\n")
		if v1, v2 := tx.reply(), tx.reply(); v1 != "OK" || v2 != "QUEUED" {
			t.Fatalf("MULTI, SET = %#v, %#v", v1, v2)
		}
		blocked := fp.raw(t)
		blocked.send("BLPOP never 0\r\n")
		waitRedisBlocked(t, fp.testProxy)
		sub := fp.raw(t)
		sub.send("SUBSCRIBE news\r\n")
		if v := sub.reply(); fmt.Sprint(v) != "[subscribe news 1]" {
			t.Fatalf("SUBSCRIBE = %#v", v)
		}
		rs.Stop()
		if v := blocked.reply(); !isUnavailable(v) {
			t.Fatalf("BLPOP = %#v", v)
		}
		sub.expectClosed() // a subscriber's stream is cut: it must resubscribe, as with Redis
		rs.Restart()
		// The transaction is gone: the rest of it fails rather than running
		// outside it, and EXEC reports the failure.
		tx.send("SET txk 2\r\nEXEC\r\n")
		for _, what := range []string{"SET in MULTI", "EXEC"} {
			if v := tx.reply(); !isUnavailable(v) {
				t.Fatalf("%s = %#v, want upstream unavailable", what, v)
			}
		}
		if n := fp.direct(t).Exists(ctx, "txk").Val(); n != 0 {
			t.Fatal("a command of the dead transaction ran")
		}
		for _, c := range []*rawConn{tx, blocked} {
			pollUntil(t, 10*time.Second, "served again", func() bool {
				c.send("ECHO ok\r\n")
				return c.reply() == "ok"
			})
			c.send("MULTI\r\nINCR txn\r\nEXEC\r\n")
			if v := []any{c.reply(), c.reply(), c.reply()}; v[0] != "OK" || v[1] != "QUEUED" || len(v[2].([]any)) != 1 {
				t.Fatalf("MULTI/INCR/EXEC = %#v", v)
			}
		}
	})
}

// TestDeadDedicatedConnectionFreesItsSlot: a client pinned to a dedicated
// connection that died (here inside MULTI) must not hold the pool slot
// others need while it sits idle.
func TestDeadDedicatedConnectionFreesItsSlot(t *testing.T) {
	rs := redistest.Start(t)
	fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) {
		p.MaxConns, p.AcquireTimeout = 1, time.Second
	})
	idle := fp.raw(t)
	idle.send("MULTI\r\n")
	if v := idle.reply(); v != "OK" {
		t.Fatalf("MULTI = %#v", v)
	}
	rs.Stop()
	rs.Restart()
	rc := fp.raw(t)
	pollUntil(t, 5*time.Second, "MULTI on the only slot", func() bool {
		rc.send("MULTI\r\n")
		v := rc.reply()
		if e, ok := v.(redisError); ok && strings.Contains(string(e), "no dedicated upstream connection") {
			t.Fatalf("MULTI = %q: the dead connection still holds the slot", e)
		}
		return v == "OK"
	})
	rc.send("INCR n\r\nEXEC\r\n")
	if v1, v2 := rc.reply(), rc.reply(); v1 != "QUEUED" || fmt.Sprint(v2) != "[1]" {
		t.Fatalf("INCR, EXEC = %#v, %#v", v1, v2)
	}
	idle.send("EXEC\r\n")
	if v := idle.reply(); !isUnavailable(v) {
		t.Fatalf("EXEC of the transaction whose connection died = %#v", v)
	}
}

func TestRedisPaused(t *testing.T) {
	pause := func(t *testing.T, rs *redistest.Server) {
		if err := syscall.Kill(rs.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(rs.Pid(), syscall.SIGCONT) })
	}
	resume := func(t *testing.T, rs *redistest.Server) {
		if err := syscall.Kill(rs.Pid(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("without a command timeout clients wait, then get their own replies", func(t *testing.T) {
		rs := redistest.Start(t)
		fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) { p.SharedConns = 1 })
		ld := startLoad(t, fp.Addr, 2)
		defer ld.stop()
		pollUntil(t, 10*time.Second, "load running", func() bool { return ld.v.oks.Load() > 200 })
		rc := fp.raw(t)
		pause(t, rs)
		rc.send("ECHO paused\r\n")
		_ = rc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := rc.r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got a reply while Redis is stopped: %v", err)
		}
		oks := ld.v.oks.Load()
		resume(t, rs)
		_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if v := rc.reply(); v != "paused" {
			t.Fatalf("reply = %#v", v)
		}
		pollUntil(t, 10*time.Second, "load resumes", func() bool { return ld.v.oks.Load() > oks+200 })
		ld.stop()
		ld.v.check(t)
		if n := ld.v.errs.Load(); n != 0 {
			t.Errorf("%d error replies; a pause shorter than every timeout should cost none", n)
		}
	})

	t.Run("with upstream.command_timeout in-flight commands fail promptly and the breaker fails the rest fast", func(t *testing.T) {
		rs := redistest.Start(t, "--enable-debug-command", "yes")
		const timeout = 200 * time.Millisecond
		fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) {
			// The backoff outlasts the in-flight failures even on a busy
			// machine, so the commands after them meet the open breaker.
			p.SharedConns, p.CommandTimeout, p.DialTimeout, p.RetryBackoff = 1, timeout, 2*time.Second, 3*time.Second
		})
		rc := fp.raw(t)
		rc.send("BLPOP nothing 0.4\r\n") // blocking commands are exempt
		if v := rc.reply(); v != nil {
			t.Fatalf("BLPOP = %#v, want a timeout nil", v)
		}
		rc.send("DEBUG SLEEP 0.5\r\n") // a command slower than allowed
		if v := rc.reply(); !isUnavailable(v) || !strings.Contains(fmt.Sprint(v), "timed out") {
			t.Fatalf("DEBUG SLEEP 0.5 = %#v, want a timeout error", v)
		}
		pollUntil(t, 10*time.Second, "serving after the slow command", func() bool {
			rc.send("ECHO x\r\n")
			return rc.reply() == "x"
		})

		pause(t, rs)
		start := time.Now()
		rc.send("ECHO a\r\nECHO b\r\n")
		for range 2 {
			if v := rc.reply(); !isUnavailable(v) || !strings.Contains(fmt.Sprint(v), "timed out") {
				t.Fatalf("reply = %#v, want a timeout error", v)
			}
		}
		inFlight := time.Since(start)
		start = time.Now()
		rc.send("ECHO c\r\nGET k\r\n")
		for range 2 {
			if v := rc.reply(); !isUnavailable(v) || !strings.Contains(fmt.Sprint(v), "retrying in") {
				t.Fatalf("reply = %#v, want the breaker's error", v)
			}
		}
		next := time.Since(start)
		t.Logf("paused: in-flight commands failed after %s (timeout %s), the next ones in %s", inFlight, timeout, next)
		// Lower bounds only: the in-flight commands waited their timeout, and
		// the next ones did not wait out a dial (the breaker's error says so).
		if inFlight < timeout || next >= 2*time.Second {
			t.Fatalf("in flight %s, next %s", inFlight, next)
		}
		resume(t, rs)
		recovered := pollUntil(t, 20*time.Second, "serving after SIGCONT", func() bool {
			rc.send("ECHO y\r\n")
			return rc.reply() == "y"
		})
		t.Logf("served again %s after SIGCONT", recovered)
	})
}

func TestClientsVanishingMidStateLeakNothing(t *testing.T) {
	rs := redistest.Start(t)
	// One dedicated connection: every stateful client gets the same one.
	fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) { p.MaxConns = 1 })
	ctx := ctxT(t)
	direct := fp.direct(t)
	ld := startLoad(t, fp.Addr, 2) // others keep working throughout
	next := fp.client(t, 3)
	blocked := func(n int) func() bool {
		return func() bool {
			return strings.Contains(direct.Info(ctx, "clients").Val(), fmt.Sprintf("blocked_clients:%d\r", n))
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 24 {
		rc := fp.raw(t)
		switch i % 4 {
		case 0: // mid-pipeline: leave with replies unread
			var b strings.Builder
			for j := range 200 {
				fmt.Fprintf(&b, "ECHO %d-%d\r\n", i, j)
			}
			rc.send(b.String())
			for range rng.IntN(50) {
				rc.reply()
			}
		case 1: // mid-MULTI
			rc.send(fmt.Sprintf("MULTI\r\nSET leaked:%d 1\r\n", i))
			if v1, v2 := rc.reply(), rc.reply(); v1 != "OK" || v2 != "QUEUED" {
				t.Fatalf("MULTI, SET = %#v, %#v", v1, v2)
			}
		case 2: // mid-BLPOP 0
			rc.send(fmt.Sprintf("BLPOP jobs:%d 0\r\n", i))
			pollUntil(t, 10*time.Second, "BLPOP blocked", blocked(1))
		case 3: // mid-WATCH
			rc.send(fmt.Sprintf("WATCH w:%d\r\n", i))
			if v := rc.reply(); v != "OK" {
				t.Fatalf("WATCH = %#v", v)
			}
		}
		rc.Close()
		if i%4 == 2 {
			// The abandoned BLPOP's connection is destroyed, not left blocked.
			pollUntil(t, 10*time.Second, "abandoned BLPOP unblocked", blocked(0))
			direct.RPush(ctx, fmt.Sprintf("jobs:%d", i), "job")
		}
		// The next stateful client gets a clean connection.
		cmds, err := next.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, fmt.Sprintf("w:%d", i), "mine", 0)
			return nil
		})
		if err != nil || len(cmds) != 1 {
			t.Fatalf("round %d: MULTI/EXEC after a client left: %v, %v", i, cmds, err)
		}
		if i%4 == 2 {
			got, err := next.BLPop(ctx, 5*time.Second, fmt.Sprintf("jobs:%d", i)).Result()
			if err != nil || got[1] != "job" {
				t.Fatalf("round %d: BLPOP after a client left blocked = %v, %v", i, got, err)
			}
		}
	}
	ld.stop()
	ld.v.check(t)
	if n := direct.Exists(ctx, "leaked:1", "leaked:5", "leaked:9", "leaked:13", "leaked:17", "leaked:21").Val(); n != 0 {
		t.Fatalf("%d commands of abandoned transactions ran", n)
	}
	next.Close()
	pollUntil(t, 10*time.Second, "sessions gone", func() bool { return fp.Server.Connected() == 0 })
	pollUntil(t, 10*time.Second, "dedicated connection returned", func() bool { return fp.Pool.Stats().Acquired == 0 })
	if st := fp.Pool.Stats(); st.Total > 1 {
		t.Fatalf("pool holds %d dedicated connections, max 1", st.Total)
	}
}

// chaosDuration is how long TestChaos runs: a few seconds by default,
// RESPGUARD_CHAOS_DURATION (e.g. 2m) on demand.
func chaosDuration(t testing.TB) time.Duration {
	s := os.Getenv("RESPGUARD_CHAOS_DURATION")
	if s == "" {
		return 4 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("RESPGUARD_CHAOS_DURATION: %v", err)
	}
	return d
}

// TestChaos runs verifiable load while Redis is killed and restarted and
// clients vanish mid-pipeline, mid-MULTI and mid-BLPOP; then it checks that
// no reply went astray, no goroutine outlived the proxy and memory settled.
func TestChaos(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	rs := redistest.Start(t)
	fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) {
		p.MaxConns, p.SharedConns, p.AcquireTimeout = 4, 2, 2*time.Second
	})
	ld := startLoad(t, fp.Addr, 8)
	pollUntil(t, 10*time.Second, "load running", func() bool { return ld.v.oks.Load() > 500 })

	ctx, cancel := context.WithTimeout(context.Background(), chaosDuration(t))
	defer cancel()
	var vanishers sync.WaitGroup
	var vanished atomic.Int64
	for i := range 4 {
		vanishers.Add(1)
		go func() {
			defer vanishers.Done()
			vanish(ctx, fp.Addr, i, &vanished)
		}()
	}
	kills := 0
	for ctx.Err() == nil {
		errs := ld.v.errs.Load()
		rs.Stop()
		kills++
		pollUntil(t, 10*time.Second, "errors after kill", func() bool { return ld.v.errs.Load() > errs })
		rs.Restart()
		oks := ld.v.oks.Load()
		pollUntil(t, 15*time.Second, "recovery", func() bool { return ld.v.oks.Load() > oks+1000 })
	}
	vanishers.Wait()
	ld.stop()
	ld.v.check(t)
	t.Logf("%d kills, %d vanished clients, %d correct replies, %d error replies, %d dropped connections",
		kills, vanished.Load(), ld.v.oks.Load(), ld.v.errs.Load(), ld.v.drops.Load())

	fp.stop()
	rs.Stop()
	goleak.VerifyNone(t, ignore)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use: %d MB before, %d MB after", before.HeapInuse>>20, after.HeapInuse>>20)
	if growth > 64<<20 {
		t.Fatalf("heap in use grew by %d MB", growth>>20)
	}
}

// vanish opens clients that leave abruptly in the middle of a pipeline, a
// transaction or a blocking command, until ctx ends.
func vanish(ctx context.Context, addr string, id int, n *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(id), 3))
	for i := 0; ctx.Err() == nil; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		var b strings.Builder
		switch rng.IntN(3) {
		case 0:
			for j := range 100 {
				fmt.Fprintf(&b, "ECHO v%d-%d-%d\r\n", id, i, j)
			}
		case 1:
			fmt.Fprintf(&b, "MULTI\r\nSET chaos:leaked:%d:%d 1\r\n", id, i)
		case 2:
			fmt.Fprintf(&b, "BLPOP chaos:q:%d:%d 0\r\n", id, i)
		}
		_, _ = conn.Write([]byte(b.String()))
		_ = conn.SetReadDeadline(time.Now().Add(time.Duration(rng.IntN(20)) * time.Millisecond))
		_, _ = conn.Read(make([]byte, rng.IntN(512)+1))
		conn.Close()
		n.Add(1)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Run("in-flight replies are delivered, new connections refused, then connections close", func(t *testing.T) {
		rs := redistest.Start(t, "--enable-debug-command", "yes")
		fp := startFaultProxy(t, rs, rs.Addr, nil)
		blpop := fp.raw(t)
		blpop.send("BLPOP drain 0.5\r\n")
		waitRedisBlocked(t, fp.testProxy)
		slow := fp.raw(t)
		slow.send("ECHO x\r\nDEBUG SLEEP 0.3\r\n")
		if v := slow.reply(); v != "x" {
			t.Fatalf("ECHO = %#v", v)
		}
		shut := make(chan error, 1)
		start := time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shut <- fp.Server.Shutdown(ctx)
		}()
		pollUntil(t, 5*time.Second, "listener closed", func() bool {
			c, err := net.Dial("tcp", fp.Addr)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		if v := slow.reply(); v != "OK" {
			t.Fatalf("DEBUG SLEEP = %#v", v)
		}
		if v := blpop.reply(); v != nil {
			t.Fatalf("BLPOP = %#v, want its timeout nil", v)
		}
		slow.expectClosed()
		blpop.expectClosed()
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		t.Logf("drained in %s", time.Since(start))
		if err := <-fp.served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		fp.served <- ErrServerClosed // for the cleanup's stop
	})
	t.Run("Shutdown with an expired context closes everything and returns", func(t *testing.T) {
		rs := redistest.Start(t)
		fp := startFaultProxy(t, rs, rs.Addr, nil)
		ctx := ctxT(t)
		rc := fp.raw(t)
		rc.send("BLPOP forever 0\r\n")
		waitRedisBlocked(t, fp.testProxy)
		idle := fp.raw(t)
		idle.send("PING\r\n")
		if v := idle.reply(); v != "PONG" {
			t.Fatalf("PING = %#v", v)
		}
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		if err := fp.Server.Shutdown(expired); !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Shutdown took %s", d)
		}
		rc.expectClosed()
		idle.expectClosed()
		if err := <-fp.served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		fp.served <- ErrServerClosed
		pollUntil(t, 10*time.Second, "blocked upstream connection closed", func() bool {
			return strings.Contains(fp.direct(t).Info(ctx, "clients").Val(), "blocked_clients:0")
		})
	})
}
