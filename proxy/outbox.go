package proxy

import (
	"net"
	"sync"
	"time"

	"github.com/respguard/respguard/telemetry"
)

// outbox is one client's reply queue: every command reserves a slot in
// command order; replies (from any upstream connection, or made locally)
// fill their slot; the writer goroutine sends completed replies strictly in
// slot order and flushes once the queue runs dry. It implements pool.Target.
//
// The head slot's bytes go straight to ready, so in the common case a reply
// is copied once, into the buffer the writer sends.
type outbox struct {
	mu       sync.Mutex // guards every field below
	cond     sync.Cond  // on mu: head advanced or outbox closed
	ready    []byte     // in-order bytes the writer may send now
	slots    []slot     // ring: slots[(head+i)%len] is seq headSeq+i
	ringHead int
	headSeq  uint64 // oldest slot whose reply is incomplete
	nextSeq  uint64 // next slot to reserve
	buffered int    // bytes held: ready plus incomplete slots' data
	limit    int    // close the client past this many buffered bytes (hard limit)
	soft     int    // ...or past this many for longer than softFor (soft limit; 0 = none)
	softFor  time.Duration
	overSoft time.Time // when buffered last rose above soft; zero while below
	closed   bool      // no more output: connection gone, overflow or done
	closing  bool      // close the connection once everything reserved is written
	overflow bool
	waiters  int // goroutines in cond.Wait

	wake chan struct{} // cap 1: ready grew or state changed

	onDone func(s *slot) // called with mu held when a slot completes; must be cheap
}

// slot is the reply to one command, with what telemetry reports about it.
type slot struct {
	data    []byte // reply bytes received while an earlier slot was incomplete
	done    bool
	started bool      // some of the reply has arrived
	errCode string    // the error reply's code ("ERR", "WRONGTYPE"...), "" if not an error
	stmt    []byte    // redacted statement, reused across slots
	key     []byte    // first key, for the guard's big/hot key detection
	elems   int64     // elements the reply announced (see replyElements)
	size    int64     // reply bytes
	replyAt time.Time // when the reply's first bytes came from Redis
	slotMeta
}

// slotMeta is what the session knows of a command when it reserves its slot.
type slotMeta struct {
	start    time.Time
	name     string // interned lower-case command name
	user     string
	db       int
	decision uint8
	upstream bool                // forwarded to Redis (false: answered by respguard)
	mute     bool                // CLIENT REPLY OFF|SKIP: the reply is read but not sent
	queued   []telemetry.Command // EXEC: the transaction's commands, for child spans
}

func newOutbox(limit, soft int, softFor time.Duration) *outbox {
	o := &outbox{limit: limit, soft: soft, softFor: softFor, wake: make(chan struct{}, 1)} // slots: on first command
	o.cond.L = &o.mu
	return o
}

// reserve takes the next slot, waiting while maxPending replies are already
// outstanding (backpressure on a client that pipelines faster than Redis
// answers). ok is false once the outbox is closed.
func (o *outbox) reserve(maxPending int, meta slotMeta, stmt, key []byte) (seq uint64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for !o.closed && int(o.nextSeq-o.headSeq) >= maxPending {
		o.wait()
	}
	if o.closed {
		return 0, false
	}
	n := int(o.nextSeq - o.headSeq)
	if n == len(o.slots) {
		o.growRing()
	}
	s := &o.slots[(o.ringHead+n)%len(o.slots)]
	s.done, s.started, s.errCode, s.slotMeta = false, false, "", meta
	s.stmt = append(s.stmt[:0], stmt...)
	s.key = append(s.key[:0], key...)
	s.elems, s.size = -1, 0
	seq = o.nextSeq
	o.nextSeq++
	return seq, true
}

func (o *outbox) growRing() {
	n := int(o.nextSeq - o.headSeq)
	nr := make([]slot, max(8, 2*len(o.slots)))
	for i := 0; i < n; i++ {
		nr[i] = o.slots[(o.ringHead+i)%len(o.slots)]
	}
	o.slots, o.ringHead = nr, 0
}

func (o *outbox) wait() {
	o.waiters++
	o.cond.Wait()
	o.waiters--
}

// Deliver implements pool.Target.
func (o *outbox) Deliver(seq uint64, p []byte, last bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || seq < o.headSeq || seq >= o.nextSeq {
		return
	}
	i := int(seq - o.headSeq)
	s := &o.slots[(o.ringHead+i)%len(o.slots)]
	if !s.started {
		s.started = true
		if s.upstream {
			s.replyAt = time.Now()
		}
		if len(p) > 0 && p[0] == '-' {
			s.errCode = errorCode(p)
		} else if len(s.key) > 0 {
			s.elems = replyElements(p)
		}
	}
	s.size += int64(len(p))
	if s.mute {
		p = nil
	}
	if i == 0 {
		o.ready = append(o.ready, p...)
	} else {
		s.data = append(s.data, p...)
	}
	o.buffered += len(p)
	if last {
		s.done = true
		if i == 0 {
			o.advance()
		}
	}
	o.afterAppend()
}

// advance pops completed slots from the head, moving their bytes to ready.
// Caller must hold mu.
func (o *outbox) advance() {
	defer func() { // the head moved: wake waitBefore and reserve's backpressure
		if o.waiters > 0 {
			o.cond.Broadcast()
		}
	}()
	for o.headSeq < o.nextSeq {
		s := &o.slots[o.ringHead]
		if !s.done {
			o.ready = append(o.ready, s.data...)
			s.data = s.data[:0] // the head's later bytes go straight to ready
			return
		}
		if len(s.data) > 0 {
			o.ready = append(o.ready, s.data...)
		}
		if o.onDone != nil {
			o.onDone(s)
		}
		if cap(s.data) > 64<<10 {
			s.data = nil
		} else {
			s.data = s.data[:0]
		}
		s.name, s.user, s.queued = "", "", nil
		o.ringHead = (o.ringHead + 1) % len(o.slots)
		o.headSeq++
	}
}

// DeliverPush implements pool.Target: out-of-band bytes go after every
// completed reply and before the replies still awaited.
func (o *outbox) DeliverPush(p []byte, last bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.ready = append(o.ready, p...)
	o.buffered += len(p)
	o.afterAppend()
}

// Abort implements pool.Target: the client's reply stream is broken.
func (o *outbox) Abort(error) { o.close() }

// overflowNow closes the client as over its output buffer limit, for replies
// held elsewhere before they reach the queue (a cluster fan-out's parts).
func (o *outbox) overflowNow() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.overflow = true
	o.closeLocked()
}

// afterAppend enforces the output limit and wakes the writer. Caller must hold mu.
func (o *outbox) afterAppend() {
	if o.limit > 0 && o.buffered > o.limit || o.overSoftTooLong() {
		o.overflow = true
		o.closeLocked()
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// local completes slot seq with a reply made by respguard.
func (o *outbox) local(seq uint64, reply []byte) {
	o.mu.Lock()
	if seq >= o.headSeq && seq < o.nextSeq {
		o.slots[(o.ringHead+int(seq-o.headSeq))%len(o.slots)].upstream = false
	}
	o.mu.Unlock()
	o.Deliver(seq, reply, true)
}

// waitBefore blocks until every slot before seq is complete. It returns
// false if the outbox closed first.
func (o *outbox) waitBefore(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for !o.closed && o.headSeq < seq {
		o.wait()
	}
	return !o.closed
}

// pending reports how many reserved slots are incomplete.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int(o.nextSeq - o.headSeq)
}

// closeWhenDone asks the writer to close the connection once every reserved
// slot has been written (QUIT, protocol errors, client EOF, shutdown).
func (o *outbox) closeWhenDone() {
	o.mu.Lock()
	o.closing = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// close discards all output and stops the writer.
func (o *outbox) close() {
	o.mu.Lock()
	o.closeLocked()
	o.mu.Unlock()
}

func (o *outbox) closeLocked() {
	if o.closed {
		return
	}
	o.closed = true
	o.ready = nil
	o.cond.Broadcast()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// overSoftTooLong tracks the soft limit, like Redis's
// client-output-buffer-limit <soft> <seconds>. Caller must hold mu.
func (o *outbox) overSoftTooLong() bool {
	if o.soft <= 0 {
		return false
	}
	if o.buffered <= o.soft {
		o.overSoft = time.Time{}
		return false
	}
	if o.overSoft.IsZero() {
		o.overSoft = time.Now()
		return false
	}
	return time.Since(o.overSoft) >= o.softFor
}

// isOverflow reports whether the outbox closed for exceeding its limit.
func (o *outbox) isOverflow() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.overflow
}

// writeLoop is the only writer of conn. It returns when the outbox closes,
// or when closing and everything has been written, or on a write error.
// writeTimeout bounds each write to a client that stopped reading (0 = none).
func (o *outbox) writeLoop(conn net.Conn, writeTimeout time.Duration, bytesOut func(int)) error {
	var spare []byte
	for {
		o.mu.Lock()
		for len(o.ready) == 0 && !o.closed && !(o.closing && o.headSeq == o.nextSeq) {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if o.closed || len(o.ready) == 0 {
			o.mu.Unlock()
			return nil
		}
		buf := o.ready
		o.ready = spare[:0]
		o.buffered -= len(buf)
		if o.buffered <= o.soft {
			o.overSoft = time.Time{}
		}
		o.mu.Unlock()

		if writeTimeout > 0 {
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		n, err := conn.Write(buf)
		if bytesOut != nil {
			bytesOut(n)
		}
		if err != nil {
			o.close()
			return err
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
		spare = buf
	}
}
