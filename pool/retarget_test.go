package pool

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
	"go.uber.org/goleak"
)

// waitReply waits (bounded) for r's replies and returns the one for seq.
func waitReply(t *testing.T, r *recorder, seq uint64) string {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("no reply to seq %d", seq)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replies[seq]
}

// send sends args on pipe and returns the reply.
func send(t *testing.T, pipe *Pipe, args ...string) string {
	t.Helper()
	r := newRecorder(1)
	if err := pipe.Send(r, 1, nil, bytesArgs(args)); err != nil {
		t.Fatal(err)
	}
	return waitReply(t, r, 1)
}

func bytesArgs(args []string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

// get reads key on the server at addr directly.
func get(t *testing.T, addr, key string) string {
	t.Helper()
	vals, err := NewControl(Config{Address: addr}).Do(context.Background(), []string{"GET", key})
	if err != nil {
		t.Fatal(err)
	}
	return vals[1].String()
}

func TestRetargetMovesNewCommandsAndFailsPinnedClients(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	pl, err := New(Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	oldShared, err := pl.Shared(ctx, 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := send(t, oldShared, "SET", "where", "a"); got != "+OK\r\n" {
		t.Fatalf("SET on a: %q", got)
	}
	pinned, err := pl.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocked := newRecorder(1)
	if err := pinned.Send(blocked, 7, nil, bytesArgs([]string{"BLPOP", "nothing", "0"})); err != nil {
		t.Fatal(err)
	}

	pl.Retarget(b.Addr)

	if got := waitReply(t, blocked, 7); !strings.HasPrefix(got, "-ERR upstream unavailable: "+ErrRetargeted.Error()) {
		t.Fatalf("in-flight BLPOP got %q, want the retarget error", got)
	}
	if err := pinned.Send(newRecorder(1), 8, nil, bytesArgs([]string{"PING"})); !errors.Is(err, ErrRetargeted) {
		t.Fatalf("pinned client's next command: err = %v, want ErrRetargeted", err)
	}
	pinned.Release()
	newShared, err := pl.Shared(ctx, 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if newShared == oldShared || oldShared.Err() == nil {
		t.Fatal("the shared connection to the old address was not replaced")
	}
	if got := send(t, newShared, "SET", "where", "b"); got != "+OK\r\n" {
		t.Fatalf("SET after retarget: %q", got)
	}
	if got, want := get(t, b.Addr, "where"), "b"; got != want {
		t.Fatalf("b has where=%q, want %q", got, want)
	}
	if got, want := get(t, a.Addr, "where"), "a"; got != want {
		t.Fatalf("a has where=%q, want %q (the write went to the old address)", got, want)
	}
	if pl.Address() != b.Addr || pl.Config().Address != b.Addr {
		t.Fatalf("Address() = %s, Config().Address = %s, want %s", pl.Address(), pl.Config().Address, b.Addr)
	}
	pl.Close()
	goleak.VerifyNone(t, ignore)
}

func TestRetargetClosesIdleDedicatedConnections(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	pl, err := New(Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	c, err := pl.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	idle := c.Pipe
	c.Release()
	pl.Retarget(b.Addr)
	if idle.Err() == nil {
		t.Fatal("an idle connection to the old address is still open")
	}
	c, err = pl.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if c.Pipe == idle {
		t.Fatal("the connection to the old address was handed out again")
	}
	if got := send(t, c.Pipe, "CONFIG", "GET", "port"); !strings.Contains(got, b.Addr[strings.LastIndex(b.Addr, ":")+1:]) {
		t.Fatalf("new dedicated connection answered %q, not from %s", got, b.Addr)
	}
}

func TestOnUnavailableReportsFailuresButNotRetargets(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	pl, err := New(Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	reports := make(chan error, 16)
	pl.SetOnUnavailable(func(err error) { reports <- err })
	ctx := context.Background()
	if _, err := pl.Shared(ctx, 0, 2, 0); err != nil {
		t.Fatal(err)
	}
	pl.Retarget(b.Addr) // closes the shared connection on purpose
	if len(reports) != 0 {
		t.Fatalf("retarget was reported as a failure: %v", <-reports)
	}
	if _, err := pl.Shared(ctx, 0, 2, 0); err != nil {
		t.Fatal(err)
	}
	b.Stop() // the shared connection fails
	expectReport(t, reports, "shared connection failure")
	if _, err := pl.Shared(ctx, 0, 2, 0); err == nil {
		t.Fatal("dial to a stopped server succeeded")
	}
	expectReport(t, reports, "failed dial")
}

func expectReport(t *testing.T, reports <-chan error, what string) {
	t.Helper()
	select {
	case err := <-reports:
		t.Logf("%s reported: %v", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was not reported", what)
	}
}
