package pool

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// eventLog is a Target that records, in arrival order, each whole push and
// each whole reply with its seq.
type eventLog struct {
	mu               sync.Mutex
	events           []string
	push, reply      []byte
	changed          chan struct{}
	pushOpen, closed bool
}

func (l *eventLog) Deliver(seq uint64, p []byte, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reply = append(l.reply, p...)
	if last {
		l.add(fmt.Sprintf("reply %d %q", seq, l.reply))
		l.reply = nil
	}
}

func (l *eventLog) DeliverPush(p []byte, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.push = append(l.push, p...)
	if last {
		l.add(fmt.Sprintf("push %q", l.push))
		l.push = nil
	}
}

func (l *eventLog) Abort(error) {}

// add records e. Caller must hold mu.
func (l *eventLog) add(e string) {
	l.events = append(l.events, e)
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until n events are recorded and returns them.
func (l *eventLog) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		got := slices.Clone(l.events)
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("waited for %d events, got %d: %v", n, len(got), got)
		}
	}
}

func TestMarkCompletesASlotAfterTheStreamedRepliesBeforeIt(t *testing.T) {
	srv := redistest.Start(t)
	p, err := Dial(context.Background(), Config{Address: srv.Addr}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	l := &eventLog{changed: make(chan struct{}, 1)}
	p.StartStream(l)
	long := strings.Repeat("c", 200) // a streamed reply longer than a marker's
	send := func(target Target, seq uint64, args ...string) {
		t.Helper()
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		if err := p.Send(target, seq, nil, b); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(seq uint64, end bool) {
		t.Helper()
		if err := p.Mark(l, seq, end, false); err != nil {
			t.Fatal(err)
		}
	}
	send(nil, 1, "SUBSCRIBE", "a", long)
	mark(1, false)
	send(nil, 2, "PING", "x")
	mark(2, false)
	send(nil, 3, "UNSUBSCRIBE")
	mark(3, true)
	send(l, 4, "ECHO", "matched")

	want := []string{
		fmt.Sprintf("push %q", "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"),
		fmt.Sprintf("push %q", "*3\r\n$9\r\nsubscribe\r\n$200\r\n"+long+"\r\n:2\r\n"),
		`reply 1 ""`,
		fmt.Sprintf("push %q", "*2\r\n$4\r\npong\r\n$1\r\nx\r\n"),
		`reply 2 ""`,
	}
	got := l.waitFor(t, len(want)+4)
	if !slices.Equal(got[:len(want)], want) {
		t.Fatalf("events:\n%s\nwant first:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rest := got[len(want):] // the two unsubscribe replies, in either channel order
	for _, e := range rest[:2] {
		if !strings.HasPrefix(e, `push "*3\r\n$11\r\nunsubscribe`) {
			t.Fatalf("event %s, want an unsubscribe push; all:\n%s", e, strings.Join(got, "\n"))
		}
	}
	if rest[2] != `reply 3 ""` || rest[3] != fmt.Sprintf("reply 4 %q", "$7\r\nmatched\r\n") {
		t.Fatalf("after the unsubscribe replies: %v, want the marker's slot then ECHO's matched reply", rest[2:])
	}
	if p.InFlight() != 0 {
		t.Fatalf("in flight = %d after every reply", p.InFlight())
	}
}

// A quiet command's reply is dropped from the stream, told from a MONITOR
// line and a RESP3 push; the streamed replies around it pass, and the
// markers after it still complete their slots.
func TestSendQuietDropsItsReplyFromTheStream(t *testing.T) {
	srv := redistest.Start(t)
	p, err := Dial(context.Background(), Config{Address: srv.Addr}, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	l := &eventLog{changed: make(chan struct{}, 1)}
	p.StartStream(l)
	send := func(args ...string) {
		t.Helper()
		if err := p.Send(nil, 0, nil, bytesArgs(args)); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(seq uint64) {
		t.Helper()
		if err := p.Mark(l, seq, false, true); err != nil {
			t.Fatal(err)
		}
	}
	send("MONITOR")
	mark(1)
	send("SUBSCRIBE", "a")
	mark(2)
	if err := p.SendQuiet([]byte("SELECT"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := p.SendQuiet([]byte("HELLO"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	send("PING", "x")
	mark(3)
	got := l.waitFor(t, 8)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^push "\+OK\\r\\n"$`),
		regexp.MustCompile(`^reply 1 ""$`),
		regexp.MustCompile(`^push ">3\\r\\n\$9\\r\\nsubscribe`),
		regexp.MustCompile(`^push "\+\d.*\\"SUBSCRIBE\\" \\"a\\"`),
		regexp.MustCompile(`^reply 2 ""$`),
		regexp.MustCompile(`^push "\+\d.*\[1 .*\\"SELECT\\" \\"1\\"`), // Redis's line for it; its +OK is dropped
		regexp.MustCompile(`^push "\+\d.*\[1 .*\\"HELLO\\" \\"3\\"`),  // ...and HELLO's map
		regexp.MustCompile(`^push "\$1\\r\\nx\\r\\n"$`),
	}
	for i, w := range want {
		if !w.MatchString(got[i]) {
			t.Fatalf("event %d = %s, want %s; all:\n%s", i, got[i], w, strings.Join(got, "\n"))
		}
	}
	if got := l.waitFor(t, 10)[8:]; !strings.Contains(got[0], `\"PING\" \"x\"`) || got[1] != `reply 3 ""` {
		t.Fatalf("after PING's reply: %v, want its MONITOR line, then the marker's slot", got)
	}
	if p.InFlight() != 0 {
		t.Fatalf("in flight = %d after every reply", p.InFlight())
	}
}
