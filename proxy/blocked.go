package proxy

import (
	"sync"

	"github.com/respguard/respguard/pool"
)

// blockedCommands is the blocking commands (BLPOP, XREAD BLOCK, WAIT...) a
// client sent on its dedicated connection whose replies have not arrived,
// oldest first. While there is one, the client is blocked in Redis: the
// oldest is the command Redis runs for it, and whatever the client
// pipelined behind it waits in Redis's query buffer until its reply. This
// is what CLIENT UNBLOCK, CLIENT LIST (flag b, cmd) and INFO's
// blocked_clients read.
//
// Its targets receive those commands' replies (or, while the connection
// streams, their markers') and pass them on: a command leaves as its reply
// arrives, before the client can see that reply. The session's reader
// goroutine adds commands as it sends them, under ded.mu; every command
// leaves with the connection (see dedicated.dropConn).
//
// Concurrency: mu guards q; it is taken after ded.mu, never before, and
// the pipe's reader goroutine takes it alone. The targets are set once,
// when it is made. A nil *blockedCommands is an empty one: a session makes
// its own when it first sends a blocking command (see
// session.blockedRecord) and keeps it, as a late reply may still come.
type blockedCommands struct {
	mu sync.Mutex
	q  []blockedCommand

	replies blockedTarget // a blocking command's reply goes here
	marks   blockedTarget // ...or, while streaming, its marker's reply
}

// newBlockedCommands returns an empty record whose commands' replies go
// on to replies (the session's pinned target), and their markers' to marks
// (its outbox).
func newBlockedCommands(replies, marks pool.Target) *blockedCommands {
	b := &blockedCommands{}
	b.replies = blockedTarget{b: b, next: replies}
	b.marks = blockedTarget{b: b, next: marks}
	return b
}

// blockedCommand is one blocking command awaiting its reply.
type blockedCommand struct {
	seq  uint64 // its reply's slot in the session's outbox
	name string // its full name, as CLIENT LIST's cmd shows it ("blpop")
}

// sent records a blocking command about to be sent as seq; its reply (or
// its marker's) must go to replies (or marks).
func (b *blockedCommands) sent(seq uint64, name string) {
	b.mu.Lock()
	b.q = append(b.q, blockedCommand{seq: seq, name: name})
	b.mu.Unlock()
}

// answered drops the commands up to seq: seq's reply has arrived (or will
// never come), and replies arrive in order.
func (b *blockedCommands) answered(seq uint64) {
	b.mu.Lock()
	i := 0
	for i < len(b.q) && b.q[i].seq <= seq {
		i++
	}
	b.q = append(b.q[:0], b.q[i:]...)
	b.mu.Unlock()
}

// reset drops every command: the connection they ran on is gone.
func (b *blockedCommands) reset() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.q = b.q[:0]
	b.mu.Unlock()
}

// running returns the full name of the command the client is blocked in,
// or "" when it is not blocked.
func (b *blockedCommands) running() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.q) == 0 {
		return ""
	}
	return b.q[0].name
}

// blockedTarget receives a blocking command's reply: the command leaves
// blockedCommands, then the reply goes on to next. It implements
// pool.Target.
type blockedTarget struct {
	b    *blockedCommands
	next pool.Target
}

func (t *blockedTarget) Deliver(seq uint64, p []byte, last bool) {
	if last {
		t.b.answered(seq)
	}
	t.next.Deliver(seq, p, last)
}

func (t *blockedTarget) DeliverPush(p []byte, last bool) { t.next.DeliverPush(p, last) }

// Abort: the connection broke in the middle of a reply, and is gone.
func (t *blockedTarget) Abort(err error) {
	t.b.reset()
	t.next.Abort(err)
}
