package proxy

import (
	"io"
	"iter"
	"os"
	"syscall"

	"github.com/respguard/respguard/proxy/resp"
	"github.com/respguard/respguard/proxy/sockio"
)

// heldRead keeps one syscall.RawConn.Read open across a session's reads, so
// that the runtime's poller remembers between them whether the socket
// became readable. A read that returned less than it asked for drained the
// socket, so the next one need not try (and fail with EAGAIN) before
// waiting: it waits for the poller's next readiness event, which only new
// input raises. That try was one system call per request in two.
//
// The open read runs on a coroutine (iter.Pull), suspended between the
// session's reads with the socket's read lock and a reference to it held.
// While it is open, nothing else may read the socket and a Close of the
// socket waits for it, so:
//   - the session releases it before anything else reads the socket
//     (watchClose, the replication relay) and before it parks or ends;
//   - other goroutines end the connection with session.hangUp, which
//     shuts the socket down without waiting, never with Close.
//
// Owned by the session's reader goroutine.
type heldRead struct {
	raw     syscall.RawConn
	readFn  func(fd uintptr) bool                   // read, bound once
	sysRead func(fd uintptr, p []byte) (int, error) // sockio.Read; a test counts calls

	next  func() (struct{}, bool) // nil: no read open
	stop  func()
	yield func(struct{}) bool // the coroutine's; nil once stopped

	// The current request (a buffer to read into, or a lender of one) and
	// its outcome.
	dst  []byte
	lend *resp.Lender
	n    int
	err  error

	drained bool // the last read drained the socket: wait before reading
}

// shutDown shuts a socket down both ways without waiting for a held read
// of it (Control takes no lock): the peer sees the connection end, and the
// read returns EOF.
func shutDown(raw syscall.RawConn) {
	_ = raw.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
}

func newHeldRead(raw syscall.RawConn) *heldRead {
	h := &heldRead{raw: raw, sysRead: sockio.Read}
	h.readFn = h.read
	return h
}

// readReady reads what the socket has into a buffer taken from b, waiting
// until it has something (or a deadline passes, or it fails).
func (h *heldRead) readReady(b *resp.Lender) (int, error) {
	h.lend = b
	return h.await()
}

// readInto reads what the socket has into p, waiting until it has
// something (or a deadline passes, or it fails).
func (h *heldRead) readInto(p []byte) (int, error) {
	h.dst = p
	return h.await()
}

func (h *heldRead) await() (int, error) {
	h.n, h.err = 0, nil
	if h.next == nil {
		h.next, h.stop = iter.Pull(h.run)
	}
	h.next()
	h.dst, h.lend = nil, nil
	return h.n, h.err
}

// take returns the buffer to read into.
func (h *heldRead) take() []byte {
	if h.lend != nil {
		return h.lend.Take()
	}
	return h.dst
}

// untake gives back a buffer that take lent, nothing having been read.
func (h *heldRead) untake() {
	if h.lend != nil {
		h.lend.Release()
	}
}

// release ends the open read, if any; the next readReady opens another.
func (h *heldRead) release() {
	if h.stop != nil {
		h.stop()
		h.next, h.stop = nil, nil
	}
}

// run is the coroutine: raw reads, one after another, each open until it
// fails (a deadline, the socket shut) or release ends it.
func (h *heldRead) run(yield func(struct{}) bool) {
	h.yield = yield
	for {
		h.drained = false // readiness seen by an earlier raw read is forgotten
		err := h.raw.Read(h.readFn)
		if h.yield == nil {
			return
		}
		if err != nil {
			h.n, h.err = 0, err
			if !yield(struct{}{}) {
				return
			}
		}
	}
}

// read is raw.Read's callback: false makes the runtime wait until the
// socket is readable. It hands each read's outcome to the session and, once
// asked for more, reads again, first waiting if the socket was drained.
func (h *heldRead) read(fd uintptr) bool {
	for {
		if h.drained {
			h.drained = false
			return false
		}
		buf := h.take()
		n, err := h.sysRead(fd, buf)
		switch {
		case err == syscall.EINTR:
			h.untake()
			continue
		case err == syscall.EAGAIN:
			h.untake()
			return false
		case err != nil:
			h.err = os.NewSyscallError("read", err)
		case n == 0:
			h.err = io.EOF
		default:
			h.n = n
		}
		drained := err == nil && n > 0 && n < len(buf)
		if !h.yield(struct{}{}) {
			h.yield = nil
			return true
		}
		h.drained = drained
	}
}
