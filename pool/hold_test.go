package pool

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/proxy/resp"
)

// pingCalls returns how many PINGs Redis has run, from INFO commandstats.
func pingCalls(t *testing.T, addr string) int {
	t.Helper()
	n, err := redistest.CommandCalls(addr, "ping")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitReplies waits until rec has all the replies it wants.
func waitReplies(t *testing.T, rec *recorder, what string) {
	t.Helper()
	select {
	case <-rec.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no replies to %s", what)
	}
}

// TestCommandsWaitForTheRepliesToWhatWasWritten: while commands written to
// Redis await their replies, commands sent meanwhile are not written; once
// the replies are in, one write carries them all, so Redis reads them in
// one go.
func TestCommandsWaitForTheRepliesToWhatWasWritten(t *testing.T) {
	srv := redistest.Start(t)
	p, g, _ := stalledPipe(t, srv)
	before := pingCalls(t, srv.Addr) // PINGs of the set-up
	const n = 100
	rec := newRecorder(n)
	for i := 1; i <= n; i++ {
		if err := p.Send(rec, uint64(i), nil, bytesArgs([]string{"PING", fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	held := p.outCmds
	p.mu.Unlock()
	if held != n {
		t.Errorf("%d commands held while a written one awaits its reply, want %d", held, n)
	}
	if calls := pingCalls(t, srv.Addr) - before; calls != 0 {
		t.Errorf("Redis ran %d PINGs sent while a written command awaited its reply, want 0", calls)
	}
	close(g.open)
	g.wait(t, g.done, "whole reply")
	waitReplies(t, rec, "the held commands")
	for i := 1; i <= n; i++ {
		if want := fmt.Sprintf("$%d\r\n%d\r\n", len(fmt.Sprint(i)), i); rec.replies[uint64(i)] != want {
			t.Fatalf("reply %d = %q, want %q", i, rec.replies[uint64(i)], want)
		}
	}
	p.mu.Lock()
	last := p.lastBurst
	p.mu.Unlock()
	if last != n {
		t.Errorf("the last write carried %d commands, want all %d held", last, n)
	}
}

// TestHeldCommandsAreWrittenPastTheHoldLimit: commands held while replies
// are awaited are written anyway once they pass holdLimit bytes, so a
// long reply does not hold everything behind it.
func TestHeldCommandsAreWrittenPastTheHoldLimit(t *testing.T) {
	srv := redistest.Start(t)
	p, g, _ := stalledPipe(t, srv)
	before := pingCalls(t, srv.Addr) // PINGs of the set-up
	arg := strings.Repeat("a", 1024)
	cmd := resp.AppendCommand(nil, []byte("PING"), []byte(arg))
	n := (holdLimit + len(cmd) - 1) / len(cmd) // the last one takes the held bytes past the limit
	rec := newRecorder(n)
	for i := 1; i <= n; i++ {
		if err := p.Send(rec, uint64(i), nil, bytesArgs([]string{"PING", arg})); err != nil {
			t.Fatal(err)
		}
	}
	// Redis runs them although the reader is still held.
	deadline := time.Now().Add(20 * time.Second)
	for calls := pingCalls(t, srv.Addr) - before; calls < n; calls = pingCalls(t, srv.Addr) - before {
		if time.Now().After(deadline) {
			t.Fatalf("Redis ran %d of the %d commands held past the limit", calls, n)
		}
		time.Sleep(time.Millisecond) // polling Redis's counter
	}
	close(g.open)
	g.wait(t, g.done, "whole reply")
	waitReplies(t, rec, "the commands written past the hold limit")
}
