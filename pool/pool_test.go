package pool

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// recorder is a Target that keeps whole replies by seq.
type recorder struct {
	mu      sync.Mutex
	replies map[uint64]string
	cur     []byte
	done    chan struct{}
	want    int
}

func newRecorder(want int) *recorder {
	return &recorder{replies: map[uint64]string{}, done: make(chan struct{}), want: want}
}

func (r *recorder) Deliver(seq uint64, p []byte, last bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = append(r.cur, p...)
	if last {
		r.replies[seq] = string(r.cur)
		r.cur = nil
		if len(r.replies) == r.want {
			close(r.done)
		}
	}
}
func (r *recorder) DeliverPush([]byte, bool) {}
func (r *recorder) Abort(error)              {}

func TestPipeMatchesPipelinedRepliesToTheirCommands(t *testing.T) {
	srv := redistest.Start(t)
	p, err := Dial(context.Background(), Config{Address: srv.Addr}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 5000
	a, b := newRecorder(n/2), newRecorder(n/2) // two clients interleaved on one pipe
	for i := range n {
		target := a
		if i%2 == 1 {
			target = b
		}
		tok := []byte(fmt.Sprintf("tok-%d", i))
		if err := p.Send(target, uint64(i), nil, [][]byte{[]byte("ECHO"), tok}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*recorder{a, b} {
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Fatal("replies did not all arrive")
		}
	}
	for i := range n {
		r := a
		if i%2 == 1 {
			r = b
		}
		tok := fmt.Sprintf("tok-%d", i)
		if want := fmt.Sprintf("$%d\r\n%s\r\n", len(tok), tok); r.replies[uint64(i)] != want {
			t.Fatalf("seq %d got %q, want %q", i, r.replies[uint64(i)], want)
		}
	}
	if p.InFlight() != 0 {
		t.Fatalf("in flight = %d after every reply", p.InFlight())
	}
}

func TestDedicatedConnectionsAreReusedOnlyWhenClean(t *testing.T) {
	srv := redistest.Start(t)
	pl, err := New(Config{Address: srv.Addr, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	ctx := context.Background()
	c1, err := pl.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := c1.Pipe
	c1.Release()
	c2, err := pl.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Pipe != first {
		t.Fatal("a clean connection was not reused")
	}
	c2.MarkDirty()
	c2.Release()
	c3, err := pl.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Release()
	if c3.Pipe == first {
		t.Fatal("a dirty connection was handed out again")
	}
	if first.Err() == nil {
		t.Fatal("the dirty connection was not closed")
	}
}

func TestBreakerFailsFastThenLetsOneProbeThrough(t *testing.T) {
	b := breaker{base: 30 * time.Millisecond, probeFor: time.Second}
	if err := b.check(); err != nil {
		t.Fatalf("closed breaker: %v", err)
	}
	start := time.Now()
	b.failure(fmt.Errorf("dial refused"), start)
	if err := b.check(); err == nil {
		t.Fatal("breaker did not open after a failure")
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.check() != nil { // polls the breaker's own clock; bounded
		if time.Now().After(deadline) {
			t.Fatal("breaker never let a probe through")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.check(); err == nil {
		t.Fatal("a second caller got through while the probe is out")
	}
	b.success()
	if err := b.check(); err != nil {
		t.Fatalf("breaker still open after success: %v", err)
	}
}

func TestSharedConnectionHeldPastStallAfterIsRetired(t *testing.T) {
	srv := redistest.Start(t)
	const stall = 50 * time.Millisecond
	p, err := New(Config{Address: srv.Addr, StallAfter: stall})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	held, err := p.Shared(ctx, 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(1)
	if err := held.Send(r, 0, nil, [][]byte{[]byte("BLPOP"), []byte("nothing"), []byte("0.5")}); err != nil {
		t.Fatal(err)
	}
	if same, _ := p.Shared(ctx, 0, 2, 0); same != held {
		t.Fatal("a connection awaiting a reply for less than StallAfter was replaced")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !held.Stalled(stall) {
		if time.Now().After(deadline) {
			t.Fatal("the held connection never counted as stalled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fresh, err := p.Shared(ctx, 0, 2, 0)
	if err != nil || fresh == held {
		t.Fatalf("Shared = %p, %v; want a fresh connection", fresh, err)
	}
	fr := newRecorder(1)
	if err := fresh.Send(fr, 0, nil, [][]byte{[]byte("PING")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fr.done:
	case <-r.done:
		t.Fatal("the fresh connection's PING waited for the held command")
	case <-time.After(5 * time.Second):
		t.Fatal("no PING reply")
	}
	select {
	case <-held.Done(): // retired: closed once its reply was in
	case <-time.After(5 * time.Second):
		t.Fatal("the retired connection did not close after its reply")
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if got := r.replies[0]; got != "*-1\r\n" {
		t.Fatalf("the held command's reply = %q", got)
	}
}

// batcher is a recorder that is a Batcher: it takes every hold offered, or
// declines every one, and counts them and the Flushes.
type batcher struct {
	*recorder
	decline bool
	holds   int // taken, not yet flushed
	offered int
	flushes int
	unowed  int // Flushes with no hold to end
}

func (b *batcher) HoldDeliver(seq uint64, p []byte, last bool) bool {
	b.recorder.Deliver(seq, p, last)
	return b.hold()
}

func (b *batcher) HoldDeliverPush(p []byte, last bool) bool {
	b.recorder.DeliverPush(p, last)
	return b.hold()
}

func (b *batcher) hold() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.offered++
	if !b.decline {
		b.holds++
	}
	return !b.decline
}

func (b *batcher) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushes++
	if b.holds == 0 {
		b.unowed++
		return
	}
	b.holds--
}

func (b *batcher) counts() (holds, offered, flushes, unowed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holds, b.offered, b.flushes, b.unowed
}

func TestPipeFlushesEveryHoldTakenAndNoHoldDeclined(t *testing.T) {
	srv := redistest.Start(t)
	p, err := Dial(context.Background(), Config{Address: srv.Addr}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 2000
	taking := &batcher{recorder: newRecorder(n / 2)}
	declining := &batcher{recorder: newRecorder(n / 2), decline: true}
	for i := range n {
		target := taking
		if i%2 == 1 {
			target = declining
		}
		if err := p.Send(target, uint64(i), nil, [][]byte{[]byte("PING")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []*batcher{taking, declining} {
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			t.Fatal("replies did not all arrive")
		}
	}
	// The reader flushes what it holds before its next read, which follows
	// the last reply; poll for that moment.
	deadline := time.Now().Add(20 * time.Second)
	for holds, _, _, _ := taking.counts(); holds > 0; holds, _, _, _ = taking.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d holds never flushed", holds)
		}
		runtime.Gosched()
	}
	if _, offered, flushes, unowed := taking.counts(); offered == 0 || flushes != offered || unowed != 0 {
		t.Fatalf("a target that takes holds: offered %d, flushed %d times (%d with no hold); want a Flush per hold", offered, flushes, unowed)
	}
	if _, offered, flushes, _ := declining.counts(); offered != n/2 || flushes != 0 {
		t.Fatalf("a target that declines holds: offered %d for %d replies (want each), flushed %d times (want none)", offered, n/2, flushes)
	}
}

// reusableAtReply is a Target that records, as each reply's last bytes
// are delivered, the reply and whether its pipe was then reusable.
type reusableAtReply struct {
	pipe    *Pipe
	replies chan string
	reply   []byte
}

func (r *reusableAtReply) Deliver(_ uint64, p []byte, last bool) {
	r.reply = append(r.reply, p...)
	if last {
		r.replies <- fmt.Sprintf("%q reusable=%v", r.reply, r.pipe.Reusable())
		r.reply = nil
	}
}
func (r *reusableAtReply) DeliverPush([]byte, bool) {}
func (r *reusableAtReply) Abort(error)              {}

func TestSendChangingDirtiesTheConnectionOnlyWhenRedisRunsTheCommand(t *testing.T) {
	srv := redistest.Start(t)
	p, err := Dial(context.Background(), Config{Address: srv.Addr}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := &reusableAtReply{pipe: p, replies: make(chan string, 1)}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"READONLY"}, `"-ERR This instance has cluster support disabled\r\n" reusable=true`},
		{[]string{"CLIENT", "NO-EVICT", "maybe"}, `"-ERR syntax error\r\n" reusable=true`},
		{[]string{"CLIENT", "NO-EVICT", "on"}, `"+OK\r\n" reusable=false`},
	} {
		args := make([][]byte, len(c.args))
		for i, a := range c.args {
			args[i] = []byte(a)
		}
		if err := p.SendChanging(r, 1, nil, args); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-r.replies:
			if got != c.want {
				t.Fatalf("%v: %s, want %s", c.args, got, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: no reply", c.args)
		}
	}
}
