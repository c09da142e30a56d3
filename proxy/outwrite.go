package proxy

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/respguard/respguard/proxy/sockio"
)

// This file is the outbox's write side: who writes ready to the client, and
// when the output is over (see outbox).

// start attaches the client connection. A connection with a file
// descriptor is written without blocking by whoever makes bytes ready, and
// by a writer goroutine only while the socket is full; any other (TLS) gets
// a writer goroutine for its whole life. owner, if not nil, is told what
// becomes of the output.
func (o *outbox) start(conn net.Conn, owner outboxOwner) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.conn, o.owner = conn, owner
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			o.raw = raw
			return
		}
	}
	o.busy, o.loop, o.wake = true, true, make(chan struct{}, 1)
	o.writer()
	go o.writeLoop()
}

// Flush implements pool.Batcher: it ends a hold (see HoldDeliver), writing
// what is ready if no other holder remains.
func (o *outbox) Flush() {
	o.mu.Lock()
	o.holds--
	o.release()
}

// release unlocks mu, then does what the change just made under it made
// due: write ready to the client, then report completed slots, then end
// the output (see afterRelease). Caller must hold mu.
func (o *outbox) release() {
	write := o.takeWriteLocked()
	observe := o.takeDoneLocked()
	end := o.endLocked()
	o.mu.Unlock()
	if write || observe {
		end = o.afterRelease(write, observe) || end
	}
	if end {
		o.finish()
	}
}

// afterRelease writes the batch without blocking (with write: the caller
// took the writer role), then reports the completed slots taken (with
// observe), and settles both under one lock: what the socket did not take
// goes to a writer goroutine, what became ready or completed meanwhile is
// written or reported in the next round. It reports whether the output
// ended. Caller does not hold mu.
func (o *outbox) afterRelease(write, observe bool) (end bool) {
	for write || observe {
		var n int
		var err error
		if write {
			n, err = o.writeRaw()
			if o.owner != nil && n > 0 {
				o.owner.bytesOut(n)
			}
		}
		if observe {
			o.reportDone()
		}
		o.mu.Lock()
		if write {
			write = o.wroteLocked(n, err)
		}
		if observe {
			o.observe = false
			observe = o.takeDoneLocked()
		}
		end = end || o.endLocked()
		o.mu.Unlock()
	}
	return end
}

// takeWriteLocked takes the writer role and ready as the batch to write,
// when there is something to write, no holder defers it and no one else
// writes. It wakes the writer goroutine if that is who writes. Caller must
// hold mu.
func (o *outbox) takeWriteLocked() bool {
	if o.holds > 0 || o.closed || o.ended || o.ready.n == 0 { // ended: the socket may belong to someone else
		return false
	}
	if o.busy {
		o.wakeLocked()
		return false
	}
	if o.raw == nil { // not started (tests): the bytes wait in ready
		return false
	}
	o.busy = true
	w := o.writer()
	o.ready, w.batch = w.batch, o.ready
	o.writing = w.batch.held
	return true
}

// wakeLocked wakes the writer goroutine if it runs. Caller must hold mu.
func (o *outbox) wakeLocked() {
	if !o.loop || o.wake == nil { // a writer goroutine on a descriptor never waits for a wake-up
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// wroteLocked settles a non-blocking write of n bytes of the batch that
// ended with err: on a full socket it hands the rest and the writer role to
// a writer goroutine; otherwise it keeps the role, with what became ready
// as the next batch, if there is one to write now (true). Caller must hold
// mu and the writer role.
func (o *outbox) wroteLocked(n int, err error) bool {
	switch {
	case err != nil:
		o.closeLocked()
	case n < o.w.batch.n: // the socket is full
		o.w.batch.skip(n)
		o.loop = true
		go o.writeLoop()
		return false
	}
	o.sentLocked()
	if o.closed || o.holds > 0 || o.ready.n == 0 {
		o.busy = false
		return false
	}
	o.ready, o.w.batch = o.w.batch, o.ready
	o.writing = o.w.batch.held
	return true
}

// sentLocked empties the batch once written. Caller must hold mu and the
// writer role.
func (o *outbox) sentLocked() {
	o.w.batch.reset()
	o.writing = o.w.batch.held // at most a spare buffer is left
	if o.held() <= o.limits.soft {
		o.overSoft = 0
	}
}

// writeRaw writes the batch with one non-blocking write(2), returning how
// many bytes the socket took; a batch of several buffers is left to the
// writer goroutine's vectored write. Caller has the writer role.
func (o *outbox) writeRaw() (int, error) {
	w := o.w
	if len(w.batch.bufs) != 1 {
		return 0, nil
	}
	w.wbuf, w.wn, w.werr = w.batch.bufs[0], 0, nil
	err := o.raw.Write(w.rawWrite)
	n, werr := w.wn, w.werr
	w.wbuf, w.werr = nil, nil
	if err == nil {
		err = werr
	}
	return n, err
}

// writeFD is rawWrite: it writes wbuf to fd until done or the socket is
// full, and never asks to wait.
func (w *outWriter) writeFD(fd uintptr) bool {
	for w.wn < len(w.wbuf) {
		n, err := sockio.Write(fd, w.wbuf[w.wn:])
		if n > 0 {
			w.wn += n
		}
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return true
		case err != nil:
			w.werr = err
			return true
		case n <= 0:
			return true // left to the writer goroutine
		}
	}
	return true
}

// writeLoop is the writer goroutine: it writes the batch and what becomes
// ready, blocking as long as the client makes it (up to writeTimeout per
// write), and exits on a write error, once the outbox closes, or, with a
// file descriptor, once ready is empty. Caller has given it the writer role.
func (o *outbox) writeLoop() {
	for {
		if w := o.w; w.batch.n > 0 {
			o.mu.Lock()
			closed := o.closed
			if !closed && o.limits.writeTimeout > 0 { // under mu: an overflow's immediate deadline must win
				_ = o.conn.SetWriteDeadline(time.Now().Add(o.limits.writeTimeout))
			}
			o.mu.Unlock()
			var n int64
			var err error
			if !closed {
				n, err = w.batch.writeTo(o.conn, &w.iov)
			}
			if o.owner != nil && n > 0 {
				o.owner.bytesOut(int(n))
			}
			if err != nil {
				o.close()
			}
		}
		o.mu.Lock()
		o.sentLocked()
		for o.raw == nil && o.ready.n == 0 && !o.closed && !(o.closing && o.headSeq == o.nextSeq) {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if o.closed || o.ready.n == 0 {
			if !o.closed && o.limits.writeTimeout > 0 {
				_ = o.conn.SetWriteDeadline(time.Time{}) // an expired one would fail the next non-blocking write
			}
			o.busy, o.loop = false, false
			o.release()
			return
		}
		o.ready, o.w.batch = o.w.batch, o.ready
		o.writing = o.w.batch.held
		o.mu.Unlock()
	}
}

// takeDoneLocked takes the completed slots for reportDone, unless a holder
// will (after its write) or another goroutine is reporting. Caller must
// hold mu.
func (o *outbox) takeDoneLocked() bool {
	if o.holds > 0 || o.observe || len(o.doneq) == 0 {
		return false
	}
	o.observe = true
	o.doneq, o.observing = o.observing[:0], o.doneq
	return true
}

// reportDone runs owner.slotDone over the slots taken by takeDoneLocked. Caller
// does not hold mu.
func (o *outbox) reportDone() {
	for i := range o.observing {
		o.owner.slotDone(&o.observing[i])
		o.observing[i].queued = nil
	}
}

// endLocked reports whether the output just ended: closed, or closing with
// everything written, and no write in progress. It is true once. Caller
// must hold mu.
func (o *outbox) endLocked() bool {
	if o.ended || o.busy {
		return false
	}
	if o.closed || o.closing && o.headSeq == o.nextSeq && o.ready.n == 0 {
		o.ended = true
		return true
	}
	return false
}

// finish closes the connection once the output is over (which also ends
// the session's reader) and tells the session.
func (o *outbox) finish() {
	switch {
	case o.owner != nil:
		o.owner.outputOver()
	case o.conn != nil:
		_ = o.conn.Close()
	}
	o.mu.Lock()
	o.over = true
	if o.finished != nil {
		close(o.finished)
	}
	o.mu.Unlock()
}

// closedChan is a closed channel: what done returns once the output is over.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// done returns a channel closed once the output is over and the
// connection closed. It is made when first asked for: an idle client's
// outbox holds none.
func (o *outbox) done() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.finished == nil {
		if o.over {
			return closedChan
		}
		o.finished = make(chan struct{})
	}
	return o.finished
}
