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
//
// The output limits count memory, as Redis's client-output-buffer-limit
// does: the capacity of every buffer the outbox holds (ready, the batch the
// writer is sending, incomplete slots' data), not just the bytes in them. A
// client past its limit is closed at once, its socket's pending write cut
// short, and later replies for it are dropped as they arrive instead of held.
type outbox struct {
	mu        sync.Mutex // guards every field below
	cond      sync.Cond  // on mu: head advanced or outbox closed
	ready     replyBuf   // in-order bytes the writer may send now
	slots     []slot     // ring: slots[(head+i)%len] is seq headSeq+i
	ringHead  int
	headSeq   uint64 // oldest slot whose reply is incomplete
	nextSeq   uint64 // next slot to reserve
	writing   int    // capacity of the writer's batch (being sent, or its spare buffer)
	slotBytes int    // capacity of slots' data
	peak      int    // most bytes ever held (see held)
	limit     int    // close the client past this many bytes held (hard limit)
	soft      int    // ...or past this many for longer than softFor (soft limit; 0 = none)
	softFor   time.Duration
	overSoft  time.Time // when held last rose above soft; zero while below
	closed    bool      // no more output: connection gone, overflow or done
	closing   bool      // close the connection once everything reserved is written
	overflow  bool
	waiters   int      // goroutines in cond.Wait
	conn      net.Conn // the client connection, once writeLoop runs; to cut its write short on overflow

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
	nr := make([]slot, max(1, 2*len(o.slots))) // one slot covers a client that waits for each reply
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
		o.ready.write(p)
	} else {
		o.appendSlot(s, p)
	}
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
			o.ready.write(s.data)
			s.data = s.data[:0] // the head's later bytes go straight to ready
			return
		}
		if len(s.data) > 0 {
			o.ready.write(s.data)
		}
		if o.onDone != nil {
			o.onDone(s)
		}
		if cap(s.data) > 64<<10 {
			o.slotBytes -= cap(s.data)
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
	o.ready.write(p)
	o.afterAppend()
}

// appendSlot appends p to a slot's data. Caller must hold mu.
func (o *outbox) appendSlot(s *slot, p []byte) {
	before := cap(s.data)
	s.data = append(s.data, p...)
	o.slotBytes += cap(s.data) - before
}

// held is the memory the outbox holds for replies. Caller must hold mu.
func (o *outbox) held() int { return o.ready.held + o.writing + o.slotBytes }

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
	held := o.held()
	o.peak = max(o.peak, held)
	if o.limit > 0 && held > o.limit || o.overSoftTooLong(held) {
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
	o.ready = replyBuf{}
	if o.overflow && o.conn != nil {
		// Like Redis, close now: a write blocked on a client that does not
		// read would otherwise hold its batch until the write timeout.
		_ = o.conn.SetWriteDeadline(time.Now())
	}
	o.cond.Broadcast()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// overSoftTooLong tracks the soft limit, like Redis's
// client-output-buffer-limit <soft> <seconds>. Caller must hold mu.
func (o *outbox) overSoftTooLong(held int) bool {
	if o.soft <= 0 {
		return false
	}
	if held <= o.soft {
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

// heldNow reports the memory the outbox holds for replies.
func (o *outbox) heldNow() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held()
}

// peakHeld reports the most memory the outbox has held for replies.
func (o *outbox) peakHeld() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.peak
}

// writeLoop is the only writer of conn. It returns when the outbox closes,
// or when closing and everything has been written, or on a write error.
// writeTimeout bounds each write to a client that stopped reading (0 = none).
func (o *outbox) writeLoop(conn net.Conn, writeTimeout time.Duration, bytesOut func(int)) error {
	var batch replyBuf // being written; then emptied and swapped in as ready
	iov := new(net.Buffers)
	o.mu.Lock()
	o.conn = conn
	o.mu.Unlock()
	for {
		o.mu.Lock()
		o.writing = batch.held // sent: at most a spare buffer is left
		if o.held() <= o.soft {
			o.overSoft = time.Time{}
		}
		for o.ready.n == 0 && !o.closed && !(o.closing && o.headSeq == o.nextSeq) {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if o.closed || o.ready.n == 0 {
			o.mu.Unlock()
			return nil
		}
		o.ready, batch = batch, o.ready
		o.writing = batch.held
		if writeTimeout > 0 { // under mu: an overflow's immediate deadline must win
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		o.mu.Unlock()

		n, err := batch.writeTo(conn, iov)
		if bytesOut != nil {
			bytesOut(int(n))
		}
		if err != nil {
			o.close()
			return err
		}
		batch.reset()
	}
}
