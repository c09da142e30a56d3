package pool

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/proxy/resp"
)

// Target receives the replies to the commands a client sent through a Pipe.
// It is implemented by the proxy's per-client reply queue. Methods are called
// from the pipe's reader goroutine and must not block on the network.
type Target interface {
	// Deliver hands (part of) the reply to the command reserved as seq.
	// p must be copied. last marks the end of that reply.
	Deliver(seq uint64, p []byte, last bool)
	// DeliverPush hands (part of) an out-of-band message: a RESP3 push, or
	// anything read while the pipe streams (Pub/Sub, MONITOR, CLIENT REPLY OFF).
	DeliverPush(p []byte, last bool)
	// Abort reports that a reply was cut off after part of it was delivered:
	// the client's byte stream is broken and its connection must close.
	Abort(err error)
}

// Batcher is a Target that can defer the work of sending what it is
// delivered: while held it keeps replies, and Flush sends them in one go. A
// pipe's reader holds each Batcher it delivers to during one burst of input
// and flushes them all before its next read from Redis. The hold begins with
// the burst's first delivery to the target, in the same call: HoldDeliver
// is Deliver and HoldDeliverPush is DeliverPush, each beginning a hold that
// one Flush ends, if they report one. A Batcher that awaits no other reply
// may decline the hold and send at once: nothing would join the write.
// Holds nest (several pipes may hold one target).
type Batcher interface {
	Target
	HoldDeliver(seq uint64, p []byte, last bool) (held bool)
	HoldDeliverPush(p []byte, last bool) (held bool)
	Flush()
}

// ErrClosed is returned by Send on a pipe that has failed or been closed.
var ErrClosed = errors.New("pool: upstream connection closed")

// ErrCommandTimeout ends a pipe on which an awaited reply made no progress
// for Config.CommandTimeout (Redis paused, or a command slower than allowed).
var ErrCommandTimeout = errors.New("pool: upstream command timed out")

// pending is one command awaiting its reply. A nil target discards the reply.
type pending struct {
	target Target
	seq    uint64
	mark   bool // a stream marker (see Mark)
	end    bool // ...whose reply ends streaming
	echoed bool // ...which MONITOR echoes after its reply
	quiet  bool // sent by SendQuiet: its reply is dropped, also while streaming
	// after: a quiet command's count of streamed replies before its own
	// (see SendQuietAfter).
	after int32
	// changes: the command changes connection state respguard does not
	// track unless Redis refuses it (see SendChanging).
	changes bool
}

// Pipe is one upstream connection with pipelined, FIFO-matched replies.
// Many goroutines may Send concurrently. Writes to the socket belong to
// whoever holds the writer role (Pipe.writing, passed under mu): a sender
// that finds the pipe idle writes its command itself without waiting, and
// the writer goroutine writes everything else, gathering bursts. While
// written commands await their replies, new ones are held (up to
// holdLimit) and written together once those replies are in, as Nagle's
// algorithm holds small segments while data is unacknowledged: Redis then
// reads many commands per read, which is what its CPU costs. One reader
// goroutine owns reads, as in rueidis' pipe.
type Pipe struct {
	conn     net.Conn
	sock     io.Writer   // the connection's writer (see socketIO); used by the writer role's holder
	direct   *sockWriter // sock on a plain socket, for writes that never wait; nil: TLS
	clientID int64       // Redis's CLIENT ID of the connection (from HELLO); 0: unknown
	DB       int         // database selected on the connection; changed only by its single owner
	Proto    int         // protocol (2 or 3); changed only by its single owner
	replies  *resp.ReplyReader

	mu        sync.Mutex    // guards the fields below
	out       []byte        // encoded commands not yet written
	spare     []byte        // a written buffer, reused as the next out
	writing   bool          // a goroutine holds the writer role (see enqueue and writeLoop)
	outCmds   int           // commands in out
	unsent    int           // queue entries whose commands are still in out (see holdingLocked)
	lastBurst int           // commands the last write took
	queue     fifo          // commands written or to be written, awaiting replies
	streamTo  Target        // non-nil: every reply goes to it out of band
	pushTo    Target        // receiver of RESP3 pushes outside stream mode
	onIdle    func(*Pipe)   // called by the reader goroutine, no locks held, when no reply is awaited
	resetAt   int           // in stream mode, replies "+RESET" end streaming
	marks     int           // in stream mode, markers awaiting their reply (see Mark)
	ending    bool          // a marker that ends streaming was sent: commands are matched again
	skipEcho  bool          // the next streamed reply is MONITOR's echo of a marker: discard it
	marker    [2][]byte     // a marker's reply: out of and in RESP2 Pub/Sub context
	markCmd   []byte        // the marker command
	preStream int           // replies still matched after StartStream: commands queued before it
	streamed  int32         // replies streamed since the last marker's or quiet command's, but RESP3 pushes and MONITOR lines (see SendQuietAfter); reader goroutine
	err       error         // first failure; once set, Send refuses
	timeout   time.Duration // command timeout (0 = none); see SetCommandTimeout
	onFail    func(error)   // run once, no locks held, after the pipe fails and before its commands are answered; see setOnFail

	wake      chan struct{} // cap 1: out became non-empty
	done      chan struct{} // closed on failure or Close
	closeOnce sync.Once
	inFlight  atomic.Int64 // awaited replies not yet read whole: len(queue), plus the one being read (see replySink.counted)
	timed     atomic.Bool  // timeout > 0, readable without mu
	progress  atomic.Int64 // unix nanoseconds: last reply bytes read, or the first command queued on an idle pipe
	dirty     atomic.Bool  // state unknown to respguard (RESET, REPLY OFF, MONITOR...): destroy, never reuse

	sink  replySink // reused by the reader goroutine
	burst burst     // targets held during the reader's current burst (reader goroutine)

	limits Limits // read while setting up; see Limits
}

// Limits returns Redis's limits as read when the connection was set up.
func (p *Pipe) Limits() Limits { return p.limits }

// newPipe starts the goroutines of an already set-up connection whose
// replies rd reads through pr, and which the writer goroutine writes to
// through w.
func newPipe(conn net.Conn, w io.Writer, pr *progressReader, rd *resp.ReplyReader, db, proto int) *Pipe {
	p := &Pipe{
		conn: conn, sock: w, replies: rd, DB: db, Proto: proto,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	p.direct, _ = w.(*sockWriter)
	pr.pipe.Store(p)
	go p.writeLoop()
	go p.readLoop()
	return p
}

// Send queues one command (raw multibulk bytes, or args to encode when raw is
// nil) whose reply goes to target as seq. A nil target discards the reply.
func (p *Pipe) Send(target Target, seq uint64, raw []byte, args [][]byte) error {
	return p.enqueue(false, pending{target: target, seq: seq}, raw, args)
}

// SendQuiet queues a command respguard runs for itself on the connection
// (SELECT, HELLO), whose reply is read and dropped. While the pipe streams,
// that reply is told from the streamed ones: it is the first reply after
// those to the commands before it (which a marker sent after each of them
// has seen in) that is neither a RESP3 push nor a MONITOR line. So while
// streaming, every command sent before it must have been followed by a
// marker (see Mark): not inside MULTI.
func (p *Pipe) SendQuiet(args ...[]byte) error {
	return p.enqueue(false, pending{quiet: true}, nil, args)
}

// SendQuietAfter is SendQuiet for a command sent while streaming inside
// MULTI, where no marker can follow the commands (it would be queued).
// There the replies since the last marker's are countable: after is how
// many replies that are neither RESP3 pushes nor MONITOR lines come before
// this command's (MULTI's +OK, then one +QUEUED or error per command
// queued). They stream on; the next such reply is this command's, dropped,
// and target, if not nil, is then delivered seq with no bytes, as a
// marker's is (see Mark).
func (p *Pipe) SendQuietAfter(target Target, seq uint64, after int, args ...[]byte) error {
	if after < 0 || after > math.MaxInt32 {
		return fmt.Errorf("pool: %d replies before a quiet command: out of range", after)
	}
	return p.enqueue(false, pending{target: target, seq: seq, quiet: true, after: int32(after)}, nil, args)
}

// SendChanging is Send for a command that changes the connection's state
// in a way respguard does not track (READONLY, CLIENT NO-TOUCH...) when it
// succeeds: unless its reply is an error, the connection is marked dirty
// (see MarkDirty) before any of the reply is delivered or counted as read,
// so whoever finds the connection idle finds it dirty too. An error reply
// means Redis refused the command and left the connection as it was, so
// the connection stays reusable: a client repeating a refused command costs
// no new connections.
func (p *Pipe) SendChanging(target Target, seq uint64, raw []byte, args [][]byte) error {
	return p.enqueue(false, pending{target: target, seq: seq, changes: true}, raw, args)
}

// enqueue appends the command (raw, or args encoded), after ASKING when
// asking, and queues w for its reply; ASKING's reply is discarded.
func (p *Pipe) enqueue(asking bool, w pending, raw []byte, args [][]byte) error {
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	if asking && p.streamTo != nil {
		p.mu.Unlock()
		return errStreaming
	}
	wasEmpty := len(p.out) == 0
	if asking {
		p.out = append(p.out, askingCommand...)
	}
	if raw != nil {
		p.out = append(p.out, raw...)
	} else {
		p.out = resp.AppendCommand(p.out, args...)
	}
	p.outCmds++
	wasIdle := p.inFlight.Load() == 0 // a reply being read still counts
	hold := p.holdingLocked()
	if p.streamTo == nil || p.ending || w.quiet {
		if asking {
			p.queue.push(pending{})
			p.inFlight.Add(1)
			p.unsent++
		}
		p.queue.push(w)
		p.inFlight.Add(1)
		p.unsent++
		if wasIdle {
			p.progress.Store(time.Now().UnixNano())
			p.armLocked() // the reader may be blocked in a read with no deadline
		}
	}
	if hold && len(p.out) < holdLimit {
		// Redis has yet to answer what was written: the command waits for
		// the reader, which writes everything held once those replies are
		// in (see sendHeld), so that Redis reads many commands at a time.
		p.mu.Unlock()
		return nil
	}
	if wasEmpty && wasIdle && p.lastBurst <= 1 && !p.writing && p.direct != nil && p.streamTo == nil {
		// Nothing in flight and the last write carried one command: one
		// client at a time, no burst to gather. Write it now, holding the
		// writer role, rather than wake the writer goroutine (a wake-up
		// costs a futex call when another processor is idle). After a
		// burst, the writer goroutine gathers the next one.
		buf := p.takeOutLocked()
		p.mu.Unlock()
		p.writeDirect(buf)
		return nil
	}
	wake := (wasEmpty || hold) && !p.writing
	p.mu.Unlock()
	if wake {
		p.signalWriter()
	}
	return nil
}

// holdLimit is how many bytes of commands wait for written ones' replies
// before they are written anyway: Redis reads 16 KiB at a time.
const holdLimit = 16 << 10

// holdingLocked reports whether commands written to Redis still await
// replies, so that commands queued now wait (see enqueue). Only matched
// replies are awaited this way: a streaming pipe writes at once. Caller
// holds mu.
func (p *Pipe) holdingLocked() bool {
	return p.streamTo == nil && p.inFlight.Load() > int64(p.unsent)
}

// sendHeld has the commands held while replies were awaited written, once
// none is: the reader goroutine calls it at the end of each burst of
// input. The writer goroutine writes them, after letting the clients the
// poller readied add theirs (see writeLoop).
func (p *Pipe) sendHeld() {
	p.mu.Lock()
	send := !p.writing && len(p.out) > 0 && !p.holdingLocked()
	p.mu.Unlock()
	if send {
		p.signalWriter()
	}
}

// takeOutLocked takes the writer role and the commands to write. Caller
// holds mu.
func (p *Pipe) takeOutLocked() []byte {
	p.writing = true
	p.lastBurst, p.outCmds, p.unsent = p.outCmds, 0, 0
	buf := p.out
	p.out, p.spare = p.spare[:0], nil
	return buf
}

// releaseWriterLocked gives up the writer role after buf was written up to
// n: what is left goes back in front of the commands queued meanwhile.
// It reports whether there is more to write. Caller holds mu.
func (p *Pipe) releaseWriterLocked(buf []byte, n int) (more bool) {
	p.writing = false
	switch {
	case n < len(buf):
		p.out = append(append(make([]byte, 0, len(buf)-n+len(p.out)), buf[n:]...), p.out...)
		p.outCmds++ // (part of) a command is left
		return true
	case cap(buf) <= 1<<20: // don't keep a buffer grown for one huge command
		p.spare = buf[:0]
	}
	return len(p.out) > 0 && (!p.holdingLocked() || len(p.out) >= holdLimit)
}

// writeDirect writes buf, taken with the writer role, without waiting:
// what the socket does not take (or a write error, which the writer
// goroutine then meets and fails the pipe with) goes to the writer
// goroutine.
func (p *Pipe) writeDirect(buf []byte) {
	n, _ := p.direct.TryWrite(buf)
	p.mu.Lock()
	more := p.releaseWriterLocked(buf, n)
	p.mu.Unlock()
	if more {
		p.signalWriter()
	}
}

// signalWriter wakes the writer goroutine.
func (p *Pipe) signalWriter() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// StartStream switches the pipe to streaming: from now on every reply goes
// to t as a push, unmatched, until a "+RESET" reply (see Send for RESET).
// Call it only with no commands in flight.
func (p *Pipe) StartStream(t Target) {
	p.mu.Lock()
	p.streamTo = t
	p.preStream = p.queue.len() // e.g. the SELECT/HELLO that set the connection up
	p.mu.Unlock()
	p.dirty.Store(true)
}

// Mark sends a marker while streaming: a PING whose reply, recognized
// among the streamed ones, is delivered to target as seq with no bytes once
// Redis has answered everything sent before it. A slot completed this way
// cannot be overtaken by a later reply made without Redis. With end, the
// marker's reply also ends streaming, and commands sent from now on are
// matched again. With echoed (the connection runs MONITOR, which shows its
// own commands too, after their reply, as Redis 7 does), the line showing
// the marker is discarded. The connection must not be inside MULTI (the
// PING would be queued).
func (p *Pipe) Mark(target Target, seq uint64, end, echoed bool) error {
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	if p.marker[0] == nil {
		var tok [16]byte
		_, _ = rand.Read(tok[:]) // never fails (crypto/rand)
		arg := "respguard-marker-" + hex.EncodeToString(tok[:])
		p.marker[0] = resp.AppendBulk(nil, []byte(arg))
		p.marker[1] = resp.AppendBulk(append([]byte("*2\r\n"), "$4\r\npong\r\n"...), []byte(arg))
		p.markCmd = resp.AppendCommandStrings(nil, "PING", arg)
	}
	p.out = append(p.out, p.markCmd...)
	p.outCmds++
	p.unsent++
	p.queue.push(pending{target: target, seq: seq, mark: true, end: end, echoed: echoed})
	p.inFlight.Add(1)
	p.marks++
	p.ending = p.ending || end
	p.mu.Unlock()
	p.signalWriter()
	return nil
}

// SendReset sends RESET while streaming; its "+RESET" reply ends streaming
// and is delivered to target as seq.
func (p *Pipe) SendReset(target Target, seq uint64) error {
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	p.out = resp.AppendCommandStrings(p.out, "RESET")
	p.outCmds++
	p.unsent++
	p.queue.push(pending{target: target, seq: seq})
	p.inFlight.Add(1)
	p.resetAt++
	p.mu.Unlock()
	p.signalWriter()
	return nil
}

// SetOwner names who receives RESP3 pushes (client tracking invalidations)
// outside stream mode, and a function the reader goroutine calls, with no
// locks held, each time the last awaited reply has been delivered. nil, nil
// discards pushes.
func (p *Pipe) SetOwner(t Target, onIdle func(*Pipe)) {
	p.mu.Lock()
	p.pushTo, p.onIdle = t, onIdle
	p.mu.Unlock()
}

// SetCommandTimeout makes the pipe fail with ErrCommandTimeout when an
// awaited reply makes no progress for d (0 = never). Only connections that
// never carry blocking commands may have one.
func (p *Pipe) SetCommandTimeout(d time.Duration) {
	p.mu.Lock()
	p.timeout = d
	p.timed.Store(d > 0)
	p.armLocked()
	p.mu.Unlock()
}

// setOnFail registers f to run once, with no locks held, after the pipe
// fails or is closed, before the commands awaiting replies are answered (at
// once if it already has). nil unregisters.
func (p *Pipe) setOnFail(f func(error)) {
	p.mu.Lock()
	err := p.err
	if err == nil {
		p.onFail = f
	}
	p.mu.Unlock()
	if err != nil && f != nil {
		f(err)
	}
}

// armLocked sets the read deadline that enforces the command timeout: armed
// while replies are awaited, cleared when none are. Caller must hold mu.
func (p *Pipe) armLocked() {
	if p.timeout <= 0 {
		return
	}
	if p.inFlight.Load() > 0 {
		_ = p.conn.SetReadDeadline(time.Now().Add(p.timeout))
	} else {
		_ = p.conn.SetReadDeadline(time.Time{})
	}
}

// progressReader is the reader of a pipe's replies: before each read it
// re-arms the command timeout, so the timeout measures time without
// progress, and a large reply streaming in is not cut off.
type progressReader struct {
	src  io.Reader            // the connection's reader (see socketIO)
	pipe atomic.Pointer[Pipe] // nil during set-up
}

func (r *progressReader) Read(b []byte) (int, error) {
	if p := r.pipe.Load(); p != nil {
		p.burst.flush() // the burst is over: the read may block
		p.sendHeld()
		if p.timed.Load() {
			p.mu.Lock()
			p.armLocked()
			p.mu.Unlock()
		}
	}
	n, err := r.src.Read(b)
	if p := r.pipe.Load(); p != nil && n > 0 {
		p.progress.Store(time.Now().UnixNano())
	}
	return n, err
}

// Stalled reports whether an awaited reply has made no progress for d
// (d <= 0: never stalled).
func (p *Pipe) Stalled(d time.Duration) bool {
	return d > 0 && p.inFlight.Load() > 0 && time.Now().UnixNano()-p.progress.Load() > int64(d)
}

// InFlight reports how many sent commands still await their reply, counting
// a reply until its last byte has been read: a connection whose reply is
// still coming in is not idle, and releasing or closing it would cut that
// reply off. It drops to 0 before the last reply's final bytes are
// delivered, so whoever they wake finds the connection idle.
func (p *Pipe) InFlight() int { return int(p.inFlight.Load()) }

// ClientID returns the connection's CLIENT ID in Redis, 0 if unknown.
func (p *Pipe) ClientID() int64 { return p.clientID }

// MarkDirty records that the connection holds state respguard cannot undo
// cheaply; Reusable then reports false.
func (p *Pipe) MarkDirty() { p.dirty.Store(true) }

// Reusable reports whether the connection may serve another client: alive,
// no replies outstanding, no state left behind.
func (p *Pipe) Reusable() bool {
	return p.Err() == nil && p.InFlight() == 0 && !p.dirty.Load()
}

// Err returns the error that ended the pipe, or nil while it is usable.
func (p *Pipe) Err() error {
	p.mu.Lock() // p.err is set before fail answers anyone, so no caller sees a stale nil
	defer p.mu.Unlock()
	return p.err
}

// Done is closed when the pipe fails or is closed.
func (p *Pipe) Done() <-chan struct{} { return p.done }

// Close closes the connection; commands awaiting replies get an error reply.
// It is idempotent.
func (p *Pipe) Close() error {
	p.fail(ErrClosed)
	return nil
}

// closeIfIdle closes the pipe if it awaits no reply and is reading none. A
// Send racing with it either comes first (and the pipe stays open) or fails
// with ErrClosed, so no command is cut off; a reply being read makes the
// reader call onIdle once it is in.
func (p *Pipe) closeIfIdle() {
	p.mu.Lock()
	idle := p.err == nil && p.inFlight.Load() == 0
	if idle {
		p.err = ErrClosed
	}
	p.mu.Unlock()
	if idle {
		p.fail(ErrClosed)
	}
}

// fail ends the pipe with err (the first error wins) and answers every
// waiting command with an error reply.
func (p *Pipe) fail(err error) {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.err = err
		waiting := p.queue.drain()
		p.inFlight.Add(-int64(len(waiting))) // a reply being read is the reader's to count down
		stream := p.streamTo
		onFail := p.onFail
		p.onFail = nil
		p.mu.Unlock()
		close(p.done)
		_ = p.conn.Close()
		if onFail != nil {
			// Before anyone is answered: a client that gets its error reply
			// and retries at once must find the pool's reaction (the breaker
			// open) in place.
			onFail(err)
		}
		msg := unavailableReply(err)
		for _, w := range waiting {
			if w.target != nil && w.mark { // its command's reply streamed: the stream is aborted below
				w.target.Deliver(w.seq, nil, true)
			} else if w.target != nil {
				w.target.Deliver(w.seq, msg, true)
			}
		}
		if stream != nil {
			stream.Abort(err)
		}
	})
}

// unavailableReply is the error reply for commands whose upstream failed.
// unavailablePrefix starts every reply the pool makes for a command whose
// connection failed; Redis itself never sends it.
const unavailablePrefix = "-ERR upstream unavailable: "

func unavailableReply(err error) []byte {
	return resp.AppendError(nil, fmt.Sprintf("%s%s", unavailablePrefix[1:], oneLine(err.Error())))
}

// UnavailableReply is the "-ERR upstream unavailable: ..." reply for err.
func UnavailableReply(err error) []byte { return unavailableReply(err) }

// IsUnavailableReply reports whether reply is one the pool made because the
// command's connection failed (see UnavailableReply), not Redis's own.
func IsUnavailableReply(reply []byte) bool {
	return bytes.HasPrefix(reply, []byte(unavailablePrefix))
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}

// writeLoop is the writer goroutine: woken when commands wait and no one
// holds the writer role, it takes the role and writes them, blocking as
// long as Redis makes it.
func (p *Pipe) writeLoop() {
	for {
		select {
		case <-p.wake:
		case <-p.done:
			return
		}
		// The goroutine that woke us put us first in line; yield so the
		// other clients the network poller just readied append their
		// commands too, and one write carries them all (twemproxy gets the
		// same batching from its event loop). Two yields measured best:
		// Redis's CPU per request behind respguard then equals twemproxy's
		// at -c 50 -P 1; with nothing else runnable a yield returns at once.
		runtime.Gosched()
		runtime.Gosched()
		p.mu.Lock()
		if p.writing || len(p.out) == 0 { // the role's holder writes what is queued
			p.mu.Unlock()
			continue
		}
		buf := p.takeOutLocked()
		p.mu.Unlock()
		if _, err := p.sock.Write(buf); err != nil {
			p.fail(fmt.Errorf("write: %w", err))
			return
		}
		p.mu.Lock()
		more := p.releaseWriterLocked(buf, len(buf))
		p.mu.Unlock()
		if more {
			p.signalWriter()
		}
	}
}

func (p *Pipe) readLoop() {
	defer p.burst.flush()
	for {
		kind, err := p.replies.Peek()
		if err != nil {
			p.fail(p.readError(err))
			return
		}
		if err := p.route(kind); err != nil {
			p.fail(err)
			return
		}
		p.holdSink()
		if err := p.replies.ReadReply(&p.sink); err != nil {
			p.failMidReply(p.readError(err))
			return
		}
		completed := p.sink.target
		switch {
		case p.sink.isReset:
			completed = p.endStream()
		case p.sink.isMark:
			completed = p.markSeen()
		case p.sink.isQuiet:
			completed = p.quietSeen()
		case p.sink.streamed && p.sink.countable() && p.streamed < math.MaxInt32:
			p.streamed++
		}
		if completed != nil && p.inFlight.Load() == 0 {
			p.idle()
		}
	}
}

// idle runs onIdle, with no locks held. Reader goroutine only.
func (p *Pipe) idle() {
	p.mu.Lock()
	onIdle := p.onIdle
	p.mu.Unlock()
	if onIdle != nil {
		onIdle(p)
	}
}

// holdSink arranges for the routed reply's target to be held for the rest
// of the burst, from its first delivery on (see Batcher). A
// target already among the last few held is not held again (a pipelining
// client's replies come together); holding one twice costs nothing more, as
// the hold is taken with a delivery and holds nest. Reader goroutine only.
func (p *Pipe) holdSink() {
	t := p.sink.target
	switch {
	case p.sink.streamTo != nil:
		t = p.sink.streamTo
	case p.sink.pushTo != nil:
		t = p.sink.pushTo
	}
	b, ok := t.(Batcher)
	if !ok || p.burst.recent(b) {
		return
	}
	p.sink.hold = b
}

// burst is the Batchers a pipe's reader holds until its next read from Redis.
// Reader goroutine only.
type burst struct {
	held []Batcher
}

// recent reports whether b is among the last few targets held.
func (h *burst) recent(b Batcher) bool {
	for _, x := range h.held[max(0, len(h.held)-4):] {
		if x == b {
			return true
		}
	}
	return false
}

// flush flushes every target held during the burst.
func (h *burst) flush() {
	for i, b := range h.held {
		b.Flush()
		h.held[i] = nil
	}
	h.held = h.held[:0]
}

// readError describes a failed read, naming a command timeout as such.
func (p *Pipe) readError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.mu.Lock()
		d := p.timeout
		p.mu.Unlock()
		return fmt.Errorf("%w: no reply for %s", ErrCommandTimeout, d)
	}
	return fmt.Errorf("read: %w", err)
}

// failMidReply ends the pipe when a routed reply could not be read whole.
// The pipe is marked failed first, so a client answered below and retrying
// at once gets a new connection; then the reply's receiver is answered: with
// Abort when part of the reply already went out, otherwise with the error
// reply (its command has left the queue, so fail did not answer it).
func (p *Pipe) failMidReply(err error) {
	p.fail(err)
	p.sink.uncount()
	switch s := &p.sink; {
	case s.started:
		s.abort(err)
	case s.target != nil:
		s.target.Deliver(s.seq, unavailableReply(err), true)
	}
}

// route points the sink at whoever gets the next reply, whose type byte is kind.
func (p *Pipe) route(kind byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sink = replySink{burst: &p.burst}
	switch {
	case p.streamTo != nil && p.preStream == 0:
		if p.skipEcho {
			p.skipEcho = false
			return nil // the sink discards it
		}
		p.sink.streamed = true
		if kind != '>' && p.queue.len() > 0 && p.queue.peek().quiet {
			return p.routeQuietLocked(kind)
		}
		if p.resetAt > 0 && kind == '+' {
			p.sink.watchReset = true
			p.sink.streamTo = p.streamTo
			return nil
		}
		if p.marks > 0 && (kind == '$' || kind == '*') {
			p.sink.watchMark = p.marker
			p.sink.streamTo = p.streamTo
			return nil
		}
		p.sink.pushTo = p.streamTo
	case kind == '>':
		p.sink.pushTo = p.pushTo
	default:
		w, ok := p.queue.pop()
		if !ok {
			return fmt.Errorf("%w: reply with no command waiting for it", resp.ErrBadReply)
		}
		p.sink.target, p.sink.seq, p.sink.counted = w.target, w.seq, &p.inFlight // counted down once it is read whole
		if w.changes && kind != '-' && kind != '!' {
			p.dirty.Store(true) // it succeeded: the connection holds its state
		}
		if p.preStream > 0 {
			p.preStream--
		}
	}
	return nil
}

// routeQuietLocked routes a reply read while streaming when the next
// command awaited is a quiet one (see SendQuiet): a simple string is held
// until it is known not to be a MONITOR line (see quietSeen); any other
// reply is the quiet command's, and is dropped. Caller holds mu.
func (p *Pipe) routeQuietLocked(kind byte) error {
	pass := p.streamed < p.queue.peek().after // a reply before the quiet command's (see SendQuietAfter)
	switch {
	case kind == '+':
		p.sink.watchQuiet, p.sink.quietPass = true, pass
		p.sink.streamTo = p.streamTo
	case pass:
		p.sink.pushTo = p.streamTo
	default:
		p.sink.streamed = false
		p.sink.isQuiet = true // dropped: the sink has no target
	}
	return nil
}

// quietSeen handles a quiet command's reply read while streaming (see
// routeQuietLocked): it leaves the queue, its reply dropped, and its
// target's slot completes. It returns the target.
func (p *Pipe) quietSeen() Target {
	p.mu.Lock()
	w, _ := p.queue.pop()
	p.inFlight.Add(-1)
	p.mu.Unlock()
	p.streamed = 0
	if w.target != nil {
		w.target.Deliver(w.seq, nil, true)
	}
	return w.target
}

// endStream handles a "+RESET" read in stream mode: deliver it to the RESET's
// sender and return to matched replies. It returns the sender.
func (p *Pipe) endStream() Target {
	p.mu.Lock()
	w, _ := p.queue.pop()
	p.inFlight.Add(-1)
	p.resetAt--
	p.streamed = 0
	p.streamTo = nil
	p.mu.Unlock()
	if w.target != nil {
		w.target.Deliver(w.seq, []byte("+RESET\r\n"), true)
	}
	return w.target
}

// markSeen handles a marker's reply read in stream mode: complete its
// sender's slot, and end streaming if the marker says so. It returns the
// sender.
func (p *Pipe) markSeen() Target {
	p.mu.Lock()
	w, _ := p.queue.pop()
	p.inFlight.Add(-1)
	p.marks--
	if w.end {
		p.streamTo, p.ending = nil, false
	}
	p.skipEcho = w.echoed
	p.mu.Unlock()
	p.streamed = 0
	if w.target != nil {
		w.target.Deliver(w.seq, nil, true)
	}
	return w.target
}

// replySink adapts a routed reply to its Target. It lives in the Pipe so
// routing a reply allocates nothing.
type replySink struct {
	target     Target
	seq        uint64
	counted    *atomic.Int64 // a matched reply: the pipe's inFlight, counted down once the reply is read whole
	pushTo     Target
	streamTo   Target // with watchReset: a simple string read while streaming
	watchReset bool
	watchMark  [2][]byte // a reply read while markers are awaited: held while it may be one
	watchQuiet bool      // a simple string read while streaming, when a quiet command's reply is next
	quietPass  bool      // ...which, unless a MONITOR line, still streams on (see SendQuietAfter)
	streamed   bool      // read while streaming: goes to the stream unless it is a marker's, RESET's or quiet command's
	lead       [2]byte   // a streamed reply's first bytes, to tell its kind
	nlead      uint8
	isReset    bool
	isMark     bool
	isQuiet    bool
	started    bool
	held       []byte  // watchReset: the simple string, held until we know it is +RESET
	hold       Batcher // the target to hold with the reply's first delivery; nil: held already, or not a Batcher
	burst      *burst  // where a hold taken is recorded
}

func (s *replySink) WriteReply(b []byte, last bool) {
	if s.streamed && int(s.nlead) < len(s.lead) {
		s.nlead += uint8(copy(s.lead[s.nlead:], b))
	}
	s.started = true
	if last {
		s.uncount() // read whole: the connection may be released from now on
	}
	switch {
	case s.watchQuiet:
		s.held = append(s.held, b...)
		if !last {
			return
		}
		if isMonitorLine(s.held) || s.quietPass {
			s.push(s.streamTo, s.held, true)
			return
		}
		s.isQuiet = true
	case s.watchReset:
		s.held = append(s.held, b...)
		if !last {
			return
		}
		if string(s.held) == "+RESET\r\n" {
			s.isReset = true
			return
		}
		s.push(s.streamTo, s.held, true)
	case s.watchMark[0] != nil:
		s.held = append(s.held, b...)
		if len(s.held) > len(s.watchMark[1]) { // not a marker: stream it on
			s.pushTo, s.watchMark = s.streamTo, [2][]byte{}
			s.push(s.pushTo, s.held, last)
			return
		}
		if !last {
			return
		}
		if bytes.Equal(s.held, s.watchMark[0]) || bytes.Equal(s.held, s.watchMark[1]) {
			s.isMark = true
			return
		}
		s.push(s.streamTo, s.held, true)
	case s.pushTo != nil:
		s.push(s.pushTo, b, last)
	case s.target != nil:
		s.deliver(b, last)
	}
}

// countable reports whether a streamed reply is one SendQuietAfter counts:
// neither a RESP3 push nor a MONITOR line.
func (s *replySink) countable() bool {
	return s.nlead > 0 && s.lead[0] != '>' && !isMonitorLine(s.lead[:s.nlead])
}

// isMonitorLine reports whether a simple string is a line of MONITOR's
// output ("+1700000000.123456 [0 addr] ..."): it starts with a digit, which
// no simple-string reply does.
func isMonitorLine(b []byte) bool {
	return len(b) > 1 && b[0] == '+' && b[1] >= '0' && b[1] <= '9'
}

// deliver hands reply bytes to the target, holding it for the burst if due.
func (s *replySink) deliver(b []byte, last bool) {
	h := s.hold
	if h == nil {
		s.target.Deliver(s.seq, b, last)
		return
	}
	s.hold = nil
	if h.HoldDeliver(s.seq, b, last) {
		s.burst.held = append(s.burst.held, h)
	}
}

// push hands out-of-band bytes to t, the target holdSink chose, holding it
// for the burst if due.
func (s *replySink) push(t Target, b []byte, last bool) {
	h := s.hold
	if h == nil {
		t.DeliverPush(b, last)
		return
	}
	s.hold = nil
	if h.HoldDeliverPush(b, last) {
		s.burst.held = append(s.burst.held, h)
	}
}

// uncount counts a matched reply down in its pipe's inFlight, once.
func (s *replySink) uncount() {
	if s.counted != nil {
		s.counted.Add(-1)
		s.counted = nil
	}
}

func (s *replySink) abort(err error) {
	switch {
	case s.pushTo != nil:
		s.pushTo.Abort(err)
	case s.target != nil:
		s.target.Abort(err)
	}
}
