package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/respguard/respguard/proxy/resp"
)

// clientReader is where a session's request parser reads from. It applies
// the client idle timeout, paid per expiry rather than per read: the read
// deadline is armed once, and when it passes the reader checks when the
// client last sent something and re-arms it for then plus the timeout,
// unless that moment has passed. A client holding a dedicated connection
// (Pub/Sub, blocked, in a transaction) is not timed out, as Redis does not
// time those out either; its timeout counts from when it was last seen
// holding one. A shutdown's immediate deadline stays in force.
//
// Owned by the session's reader goroutine.
type clientReader struct {
	s        *session
	lastRead time.Time                 // when the client last sent bytes (or the session started)
	readOnce func([]byte) (int, error) // the connection's Read, or a socket's held read (see socketReader)
}

// newClientReader returns the session's reader: a socketReader, which
// holds no buffer while the client is idle, for a plain TCP or Unix socket;
// a clientReader reading into a buffer the parser keeps for any other
// connection (TLS).
func newClientReader(s *session, started time.Time) io.Reader {
	if idle := s.srv.cfg.Client.IdleTimeout; idle > 0 {
		_ = s.conn.SetReadDeadline(started.Add(idle))
	}
	switch conn := s.conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		raw, err := conn.(syscall.Conn).SyscallConn()
		if err == nil {
			r := &socketReader{clientReader: clientReader{s: s, lastRead: started}, raw: raw}
			r.readOnce = r.readInto
			s.sock = r
			return r
		}
	}
	return &clientReader{s: s, lastRead: started, readOnce: s.conn.Read}
}

// Read reads into p, the parser's buffer (it keeps one while a command is
// incomplete or input is pipelined).
func (c *clientReader) Read(p []byte) (int, error) {
	for {
		n, err := c.readOnce(p)
		if c.parkWanted(n, err) { // in the middle of a command: not now
			c.s.declinePark()
			continue
		}
		if !c.stillActive(n, err) {
			return c.read(n, err)
		}
	}
}

// parkWanted reports whether a read ended at the deadline the sweeper set
// to ask the reader to park (see parking).
func (c *clientReader) parkWanted(n int, err error) bool {
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && !c.s.srv.shuttingDown() && c.s.parkAsked()
}

// rearm sets the read deadline the reader works under: the idle timeout's
// (from the client's last input), none, or a shutdown's immediate one.
func (c *clientReader) rearm() {
	var due time.Time
	if idle := c.s.srv.cfg.Client.IdleTimeout; idle > 0 {
		due = c.lastRead.Add(idle)
	}
	_ = c.s.conn.SetReadDeadline(due)
	if c.s.srv.shuttingDown() { // Shutdown's immediate deadline may just have been overwritten
		_ = c.s.conn.SetReadDeadline(time.Now())
	}
}

// read accounts for n bytes just read.
func (c *clientReader) read(n int, err error) (int, error) {
	if n > 0 {
		c.s.parking.noteRead()
		if c.s.srv.cfg.Client.IdleTimeout > 0 {
			c.lastRead = time.Now()
		}
		if tel := c.s.srv.tel; tel != nil {
			tel.BytesIn(n)
		}
	}
	return n, err
}

// stillActive reports whether a read that ended with err at the idle
// deadline must be retried: the client was active since the deadline was
// armed, or holds a dedicated connection. It then re-arms the deadline.
func (c *clientReader) stillActive(n int, err error) bool {
	s := c.s
	idle := s.srv.cfg.Client.IdleTimeout
	if n > 0 || idle <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) || s.srv.shuttingDown() {
		return false
	}
	now := time.Now()
	s.ded.mu.Lock()
	pinned := s.ded.conn != nil
	s.ded.mu.Unlock()
	if pinned {
		c.lastRead = now
	}
	due := c.lastRead.Add(idle)
	if !due.After(now) {
		return false
	}
	_ = s.conn.SetReadDeadline(due)
	if s.srv.shuttingDown() { // Shutdown's immediate deadline may just have been overwritten
		_ = s.conn.SetReadDeadline(now)
	}
	return true
}

// socketReader is a clientReader on a plain socket: it waits for input
// without a buffer (resp.ReadyReader), reading with the runtime's poller
// through syscall.RawConn, in a read held open between requests (see
// heldRead). The held read is made when the session first reads and let go
// when it parks or stops reading: a client that is idle holds none.
type socketReader struct {
	clientReader // its Read reads through held (readInto)
	raw          syscall.RawConn
	held         *heldRead // nil: no read held (owned by the reader goroutine)
}

// ReadReady implements resp.ReadyReader. A wait that the sweeper asked to
// park ends with errPark.
func (r *socketReader) ReadReady(b *resp.Lender) (int, error) {
	for {
		n, err := r.hold().readReady(b)
		if r.parkWanted(n, err) {
			r.release() // a parked session holds no read
			return 0, errPark
		}
		if !r.stillActive(n, err) {
			return r.read(n, err)
		}
	}
}

// readInto reads into p through the held read.
func (r *socketReader) readInto(p []byte) (int, error) { return r.hold().readInto(p) }

// hold returns the held read, made if there is none.
func (r *socketReader) hold() *heldRead {
	if r.held == nil {
		r.held = newHeldRead(r.raw)
	}
	return r.held
}

// release ends the held read, if any, and lets it go.
func (r *socketReader) release() {
	if r.held != nil {
		r.held.release()
		r.held = nil
	}
}

// awaitInput parks the goroutine until the socket has input (or fails),
// reading nothing. Called first thing, it keeps a client that has not sent
// a command on the smallest goroutine stack: the wait is a few frames deep,
// not the parser's and the session's.
func (r *socketReader) awaitInput() { _ = r.raw.Read(peekReady) }

// peekReady is raw.Read's callback for awaitInput: false parks until readable.
func peekReady(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN
}
