package proxy

import (
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/respguard/respguard/telemetry"
)

// outbox is one client's reply queue: every command reserves a slot in
// command order; replies (from any upstream connection, or made locally)
// fill their slot; completed replies leave strictly in slot order. It
// implements pool.Target and pool.Batcher.
//
// The head slot's bytes go straight to ready, so in the common case a reply
// is copied once, into the buffer that is sent.
//
// Who writes: the goroutine that makes bytes ready (usually an upstream
// connection's reader) writes them to the client itself, without blocking,
// when no write is in progress (it takes the writer role, busy); whatever
// the socket does not take at once goes to a writer goroutine started for
// it, which exits once ready is empty, so an idle client costs one
// goroutine, its reader. A connection without a file descriptor (TLS) keeps
// one writer goroutine for its whole life instead. A holder (HoldDeliver,
// Flush) defers the write to the end of its burst, so many replies leave in
// one write; HoldDeliver takes no hold when no other reply is awaited, so a
// client without a pipeline costs its upstream reader two lock round-trips
// per reply: the delivery, and settling the write and the report after it.
//
// The output limits count memory, as Redis's client-output-buffer-limit
// does: the capacity of every buffer the outbox holds (ready, the batch
// being sent, incomplete slots' data), not just the bytes in them. A client
// past its limit is closed at once, its socket's pending write cut short,
// and later replies for it are dropped as they arrive instead of held.
//
// Completed slots are reported to the owner after mu is released and after the
// write their bytes went out in, so that reporting never delays a reply.
type outbox struct {
	mu        outboxMutex // guards every field below but those owned by the writer role
	cond      sync.Cond   // on mu: head advanced or outbox closed
	ready     replyBuf    // in-order bytes to send next
	slots     []slot      // ring: slots[(head+i)%len] is seq headSeq+i
	ringHead  int
	headSeq   uint64        // oldest slot whose reply is incomplete
	nextSeq   uint64        // next slot to reserve
	writing   int           // capacity of batch (being sent, or its spare buffer)
	slotBytes int           // capacity of slots' data
	peak      int           // most bytes ever held (see held)
	limits    *outputLimits // shared by the server's outboxes
	overSoft  int64         // when held last rose above the soft limit, in Unix nanoseconds (wall clock, as Redis); 0 while below
	waiters   int           // goroutines in cond.Wait
	holds     int           // holds taken (HoldDeliver) not yet ended by Flush: leave ready to the last Flush
	closed    bool          // no more output: connection gone, overflow or done
	closing   bool          // close the connection once everything reserved is written
	overflow  bool
	pushOpen  bool // an out-of-band message is being delivered: its first bytes came, not its last
	pushMuted bool // ...and it is dropped (see writePushLocked)
	busy      bool // a goroutine has the writer role: it owns w
	loop      bool // ...and it is the writer goroutine (wake it when ready grows)
	ended     bool // output is over: finish runs (or ran)
	over      bool // ...and finish is done: conn closed, finished (if made) closed

	doneq     []slot // completed slots awaiting owner.slotDone (stmt and key buffers swapped, not copied)
	observing []slot // the batch owner.slotDone runs over, owned by whoever set observe
	observe   bool   // a goroutine is running owner.slotDone over observing

	// Set by start, then read-only.
	conn  net.Conn        // the client connection; nil until start
	raw   syscall.RawConn // conn's descriptor for non-blocking writes; nil: TLS or none
	owner outboxOwner     // nil: nothing reported, conn closed at the end

	w *outWriter // owned by the writer role (busy); nil until there is something to write (see writer)

	wake     chan struct{} // cap 1: ready grew or state changed (for a lifelong writer goroutine; nil with a descriptor)
	finished chan struct{} // closed once output is over and conn is closed; made by done when first asked for
}

// outWriter is what the writer role works with: made when the outbox
// first has bytes to write, let go of when its client parks (see shrink).
// The writer role owns it; it is made and dropped under mu, while no one
// has the role.
type outWriter struct {
	batch    replyBuf              // being written; then emptied and swapped in as ready
	iov      net.Buffers           // scratch for vectored writes
	rawWrite func(fd uintptr) bool // writeFD, bound once
	wbuf     []byte                // rawWrite's input: bytes to write...
	wn       int                   // ...how many it wrote
	werr     error                 // ...and its error (EAGAIN is not one)
}

// writer returns the writer role's state, made if the outbox has none.
// Caller must hold mu and be taking the writer role.
func (o *outbox) writer() *outWriter {
	if o.w == nil {
		o.w = &outWriter{}
		o.w.rawWrite = o.w.writeFD
	}
	return o.w
}

// outboxOwner is told what becomes of an outbox's output (the session is).
type outboxOwner interface {
	slotDone(sl *slot) // a slot completed: called with no lock held, one slot at a time
	bytesOut(n int)    // n bytes were written to the client
	outputOver()       // the output is over: end the connection
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
	muteOOB  bool                // ...and so is what streams out of band while it runs, but RESP3 pushes (see DeliverPush)
	queued   []telemetry.Command // EXEC: the transaction's commands, for child spans
}

// outputLimits bound what an outbox holds and how long a write may block.
// One value, made from the configuration, is shared by a server's outboxes.
type outputLimits struct {
	hard         int           // close the client past this many bytes held (0 = none)
	soft         int           // ...or past this many for longer than softFor (0 = none)
	softFor      time.Duration // how long over soft closes the client
	writeTimeout time.Duration // bounds each blocking write to a client that stopped reading (0 = none)
}

func newOutbox(limits *outputLimits) *outbox {
	o := &outbox{limits: limits} // slots: on first command; wake: in start, if needed; finished: in done, if asked
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

// shrink lets go of what an idle client's outbox can rebuild: the reply
// ring (with its statement and key buffers), the queues of completed slots
// and the spare write buffers. It does nothing while a reply is
// outstanding, being written or being reported.
func (o *outbox) shrink() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nextSeq != o.headSeq || o.busy || o.observe || len(o.doneq) > 0 || o.ready.n > 0 {
		return
	}
	o.slots, o.ringHead = nil, 0
	o.doneq, o.observing = nil, nil
	o.ready, o.w, o.writing = replyBuf{}, nil, 0
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
	if !o.fillLocked(seq, p, last) {
		o.mu.Unlock()
		return
	}
	o.release()
}

// HoldDeliver implements pool.Batcher: Deliver, and hold the outbox until
// Flush if a reply is still awaited (the burst may bring it). With every
// reply in, it declines the hold and writes at once, as Deliver does: no
// other reply can join the write, and the Flush is saved.
func (o *outbox) HoldDeliver(seq uint64, p []byte, last bool) (held bool) {
	o.mu.Lock()
	if !o.fillLocked(seq, p, last) {
		o.mu.Unlock()
		return false
	}
	held = !o.closed && o.headSeq < o.nextSeq
	if held {
		o.holds++
	}
	o.release()
	return held
}

// fillLocked adds p to slot seq's reply, completing it with last, and
// enforces the output limit. It reports false, doing nothing, if the
// outbox is closed or seq is not an incomplete slot. Caller must hold mu.
func (o *outbox) fillLocked(seq uint64, p []byte, last bool) bool {
	if o.closed || seq < o.headSeq || seq >= o.nextSeq {
		return false
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
	return true
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
		if o.owner != nil {
			o.queueDone(s)
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
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.writePushLocked(p, last)
	o.release()
}

// HoldDeliverPush implements pool.Batcher: DeliverPush, and hold the outbox
// until Flush. Out-of-band messages come in bursts (a publisher's), so the
// hold is always taken while the outbox is open.
func (o *outbox) HoldDeliverPush(p []byte, last bool) (held bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	o.writePushLocked(p, last)
	held = !o.closed
	if held {
		o.holds++
	}
	o.release()
	return held
}

// writePushLocked makes out-of-band bytes ready, unless they are muted:
// while the oldest awaited reply's command runs under CLIENT REPLY OFF or
// SKIP (muteOOB), what streams is dropped but RESP3 pushes, as Redis mutes
// all but pushes (the replies to a subscriber's or monitor's commands
// stream out of band). Whether a message is muted is decided by its first
// bytes. Caller must hold mu.
func (o *outbox) writePushLocked(p []byte, last bool) {
	if !o.pushOpen {
		o.pushMuted = len(p) > 0 && p[0] != '>' && o.headSeq < o.nextSeq && o.slots[o.ringHead].muteOOB
	}
	o.pushOpen = !last
	if o.pushMuted {
		return
	}
	o.ready.write(p)
	o.afterAppend()
}

// queueDone queues a completed slot for owner.slotDone: a copy, whose statement and
// key buffers are swapped with those of an earlier copy, so that s can be
// reused at once and nothing is allocated. Caller must hold mu.
func (o *outbox) queueDone(s *slot) {
	k := len(o.doneq)
	if k < cap(o.doneq) {
		o.doneq = o.doneq[:k+1]
	} else {
		o.doneq = append(o.doneq, slot{})
	}
	d := &o.doneq[k]
	stmt, key := d.stmt[:0], d.key[:0]
	*d = *s
	d.data = nil
	s.stmt, s.key = stmt, key
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
	o.overflow = true
	o.closeLocked()
	o.release()
}

// afterAppend enforces the output limit. Caller must hold mu.
func (o *outbox) afterAppend() {
	held := o.held()
	o.peak = max(o.peak, held)
	if o.limits.hard > 0 && held > o.limits.hard || o.overSoftTooLong(held) {
		o.overflow = true
		o.closeLocked()
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
	o.wakeLocked()
	o.release()
}

// close discards all output and stops the writer.
func (o *outbox) close() {
	o.mu.Lock()
	o.closeLocked()
	o.release()
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
	o.wakeLocked()
}

// overSoftTooLong tracks the soft limit, like Redis's
// client-output-buffer-limit <soft> <seconds>. Caller must hold mu.
func (o *outbox) overSoftTooLong(held int) bool {
	if o.limits.soft <= 0 {
		return false
	}
	if held <= o.limits.soft {
		o.overSoft = 0
		return false
	}
	now := time.Now().UnixNano()
	if o.overSoft == 0 {
		o.overSoft = now
		return false
	}
	return time.Duration(now-o.overSoft) >= o.limits.softFor
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
