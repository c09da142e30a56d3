//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// parker watches the sockets of parked sessions (see parking) with an epoll
// instance of its own, and resumes a session once its socket is readable or
// hung up (see parking). Each socket is registered one-shot, its event carrying the
// session's id (never reused), not the descriptor, which the kernel may
// hand to another connection once this one is closed. The epoll descriptor
// is itself waited on through Go's poller, so the waiting goroutine holds
// no thread.
type parker struct {
	ep  *os.File        // the epoll instance; closing it (stop) ends run
	raw syscall.RawConn // ep's, for waiting through Go's poller

	mu     sync.Mutex          // guards parked and closed
	parked map[uint64]*session // by session id, while registered and not yet resumed
	closed bool

	// Owned by run.
	events []unix.EpollEvent
	n      int
	err    error // epoll_wait's, ending run
}

// errParkerClosed is returned by add once the parker has stopped.
var errParkerClosed = errors.New("proxy: parker closed")

// newParker returns a parker; the caller runs run on a goroutine of its own
// and calls stop to end it.
func newParker() (*parker, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("parker: set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(fd), "respguard-parker")
	raw, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("parker: %w", err)
	}
	return &parker{ep: ep, raw: raw, parked: make(map[uint64]*session), events: make([]unix.EpollEvent, 128)}, nil
}

// add registers fd for one readiness event (input, hang-up or error) on
// behalf of s. Caller holds s.parking.mu.
func (p *parker) add(s *session, fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errParkerClosed
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	ev.Fd, ev.Pad = int32(uint32(s.id)), int32(uint32(s.id>>32))
	err := p.ctl(unix.EPOLL_CTL_MOD, fd, &ev) // a one-shot registration stays, disabled, after its event
	if errors.Is(err, unix.ENOENT) {
		err = p.ctl(unix.EPOLL_CTL_ADD, fd, &ev)
	}
	if err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	p.parked[s.id] = s
	return nil
}

func (p *parker) ctl(op, fd int, ev *unix.EpollEvent) error {
	var err error
	if cerr := p.raw.Control(func(ep uintptr) { err = unix.EpollCtl(int(ep), op, fd, ev) }); cerr != nil {
		return cerr
	}
	return err
}

// forget drops s, which resumed for another reason than its socket: a
// late event for it is then ignored.
func (p *parker) forget(s *session) {
	p.mu.Lock()
	delete(p.parked, s.id)
	p.mu.Unlock()
}

// run waits for events and resumes their sessions, until close. It returns
// the error that stopped it early, or nil once closed.
func (p *parker) run() error {
	for {
		if err := p.raw.Read(p.collect); err != nil {
			return nil
		}
		if p.err != nil {
			return p.err
		}
		for _, ev := range p.events[:p.n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			s := p.parked[id]
			delete(p.parked, id)
			p.mu.Unlock()
			if s != nil {
				s.resume()
			}
		}
	}
}

// collect is raw.Read's callback: it takes the events due without
// waiting; false (none) makes the runtime wait until the epoll descriptor
// is readable.
func (p *parker) collect(fd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(fd), p.events, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			p.n, p.err = 0, fmt.Errorf("epoll_wait: %w", err)
			return true
		}
		p.n = n
		return n > 0
	}
}

// stop ends run, refuses further registrations and returns the sessions
// still parked, for the caller to resume if need be.
func (p *parker) stop() []*session {
	p.mu.Lock()
	p.closed = true
	left := make([]*session, 0, len(p.parked))
	for id, s := range p.parked {
		left = append(left, s)
		delete(p.parked, id)
	}
	p.mu.Unlock()
	_ = p.ep.Close()
	return left
}
