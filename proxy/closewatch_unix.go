//go:build unix

package proxy

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// watchClose reports, by closing the returned channel, that the client
// closed its connection, while the session's reader is not reading (its
// command is held by CLIENT PAUSE, it awaits replies after QUIT). It peeks, consuming nothing. Once the
// client has sent more bytes it cannot tell a close from them and stops
// watching. stop ends the watch; it returns once the watcher has let go of
// the socket.
func (s *session) watchClose() (closed <-chan struct{}, stop func()) {
	gone := make(chan struct{})
	return gone, s.onClientClose(func() { close(gone) })
}

// onClientClose is watchClose with a callback: f runs, on the watcher's
// goroutine, if the client closes its connection before stop is called.
func (s *session) onClientClose(f func()) (stop func()) {
	s.releaseInput() // the watcher reads the socket
	conn := s.conn
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	var stopped atomic.Bool
	go func() {
		defer close(done)
		var b [1]byte
		eof := false
		peek := func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				return false // wait until readable
			}
			eof = n == 0 || err != nil
			return true
		}
		err := raw.Read(peek)
		for errors.Is(err, os.ErrDeadlineExceeded) && !stopped.Load() {
			// The sweeper's request to park (see parking): not now.
			_ = s.conn.SetReadDeadline(time.Time{})
			if stopped.Load() { // stop's deadline may just have been cleared
				break
			}
			err = raw.Read(peek)
		}
		if err == nil && eof {
			f()
		}
	}()
	return func() {
		stopped.Store(true)
		_ = s.conn.SetReadDeadline(time.Now()) // ends the watcher's wait
		<-done
		_ = s.conn.SetReadDeadline(time.Time{}) // deadlineReader sets the next one
	}
}
