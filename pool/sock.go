package pool

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/respguard/respguard/proxy/sockio"
)

// sockReader reads a plain socket with sockio's raw reads, waiting through
// the runtime's poller as net.Conn's Read does (deadlines included). Only
// the pipe's reader goroutine uses it.
type sockReader struct {
	conn   net.Conn // for errors' addresses
	raw    syscall.RawConn
	readFn func(fd uintptr) bool // read, bound once
	buf    []byte
	n      int
	err    error
}

// sockWriter writes a plain socket with sockio's raw writes, waiting
// through the runtime's poller while the socket is full. Only the pipe's
// writer goroutine uses it.
type sockWriter struct {
	conn    net.Conn
	raw     syscall.RawConn
	writeFn func(fd uintptr) bool // write, bound once
	buf     []byte
	n       int
	err     error
	noWait  bool // TryWrite: stop when the socket is full
}

// socketIO returns a reader and a writer of conn: raw ones on a plain TCP
// or Unix socket, conn itself on anything else (TLS).
func socketIO(conn net.Conn) (io.Reader, io.Writer) {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		raw, err := conn.(syscall.Conn).SyscallConn()
		if err != nil {
			break
		}
		r := &sockReader{conn: conn, raw: raw}
		r.readFn = r.read
		w := &sockWriter{conn: conn, raw: raw}
		w.writeFn = w.write
		return r, w
	}
	return conn, conn
}

// Read reads into b, waiting until the socket has input.
func (r *sockReader) Read(b []byte) (int, error) {
	r.buf, r.n, r.err = b, 0, nil
	err := r.raw.Read(r.readFn)
	n := r.n
	if err == nil {
		err = r.err
	}
	r.buf, r.err = nil, nil
	return n, err
}

// read is raw.Read's callback: false parks until the socket is readable.
func (r *sockReader) read(fd uintptr) bool {
	for {
		n, err := sockio.Read(fd, r.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			r.err = opError("read", r.conn, err)
		case n == 0 && len(r.buf) > 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}

// Write writes all of b, waiting while the socket is full.
func (w *sockWriter) Write(b []byte) (int, error) {
	w.buf, w.n, w.err = b, 0, nil
	err := w.raw.Write(w.writeFn)
	n := w.n
	if err == nil {
		err = w.err
	}
	w.buf, w.err = nil, nil
	return n, err
}

// TryWrite writes as much of b as the socket takes now, never waiting.
func (w *sockWriter) TryWrite(b []byte) (int, error) {
	w.noWait = true
	n, err := w.Write(b)
	w.noWait = false
	return n, err
}

// write is raw.Write's callback: false parks until the socket is writable.
func (w *sockWriter) write(fd uintptr) bool {
	for w.n < len(w.buf) {
		n, err := sockio.Write(fd, w.buf[w.n:])
		if n > 0 {
			w.n += n
		}
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return w.noWait
		case err != nil:
			w.err = opError("write", w.conn, err)
			return true
		}
	}
	return true
}

// opError describes a failed read or write as net.Conn's would.
func opError(op string, conn net.Conn, errno error) error {
	return &net.OpError{Op: op, Net: conn.LocalAddr().Network(), Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
