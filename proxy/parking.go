package proxy

import (
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Parking: an idle client on a plain TCP or Unix socket costs no
// goroutine. A sweeper asks each session that has read nothing since its
// previous sweep to park; the session's reader, if it is waiting for input
// with nothing unparsed and no reply outstanding, hands its socket to the
// server's parker (an epoll instance of respguard's own) and its goroutine
// returns. A new session starts parked. When the socket has input or hangs
// up, the parker starts a new reader goroutine. Whatever else ends or wakes a session resumes a parked
// one first, so that the reader's usual exit runs: its output ending
// (EOF, CLIENT KILL, an output limit, Close), Shutdown, the idle timeout.
// Replies, Pub/Sub messages and invalidations are written by the upstream
// side, which needs no reader.

// readerState is where a session's reader stands. The transitions are the
// methods of session below, each under parking.mu.
type readerState uint8

const (
	readerRunning   readerState = iota // a goroutine runs the reader
	readerParkAsked                    // ...and the sweeper asked it to park: its read deadline is past
	readerParked                       // no goroutine: the parker starts one when the socket has input
	readerStays                        // the reader keeps its goroutine for good (a replication relay)
)

// parking is a session's reader lifecycle. mu guards state and idle; read
// is the reader's mark of activity, cleared by each sweep.
type parking struct {
	mu    sync.Mutex
	idle  *time.Timer // while parked under an idle timeout: resumes the reader when it is due
	read  atomic.Bool // the reader read input since the last sweep
	state readerState
}

// errPark is what a read asked to park returns (see socketReader.ReadReady).
var errPark = errors.New("proxy: reader asked to park")

// noteRead marks the session active for the sweeper. Reader goroutine.
func (p *parking) noteRead() {
	if !p.read.Load() {
		p.read.Store(true)
	}
}

// askPark is the sweeper's: a session on a plain socket that has read
// nothing since the previous sweep is asked to park. Its read deadline
// moves to now, which ends the reader's wait for input; a reader that is
// not waiting for input (a partial command, a command being handled) sees
// it later or declines.
func (s *session) askPark(now time.Time) {
	if s.sock == nil || s.parking.read.Swap(false) {
		return
	}
	p := &s.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == readerRunning || p.state == readerParkAsked {
		p.state = readerParkAsked
		_ = s.conn.SetReadDeadline(now)
	}
}

// parkAsked reports whether the sweeper asked the reader to park.
func (s *session) parkAsked() bool {
	s.parking.mu.Lock()
	defer s.parking.mu.Unlock()
	return s.parking.state == readerParkAsked
}

// declinePark keeps the reader on its goroutine after a request to park,
// and restores its read deadline. Reader goroutine.
func (s *session) declinePark() {
	s.parking.mu.Lock()
	if s.parking.state == readerParkAsked {
		s.parking.state = readerRunning
	}
	s.parking.mu.Unlock()
	s.sock.rearm()
}

// stayUnparked keeps the reader on its goroutine for good. Reader goroutine.
func (s *session) stayUnparked() {
	s.parking.mu.Lock()
	s.parking.state = readerStays
	s.parking.mu.Unlock()
}

// park hands a session asked to park to the parker and reports true: the
// caller, the reader goroutine, must then return at once and touch nothing
// of the session, whose next reader may already run. It reports false,
// with the reader's deadline restored, when the session cannot park now:
// a reply outstanding, the server stopping, the parker gone.
func (s *session) park() bool {
	if s.out.pending() > 0 || s.rd.Buffered() > 0 || s.srv.parker == nil {
		s.declinePark()
		return false
	}
	s.shrink()
	if !s.parkNow() {
		s.declinePark()
		return false
	}
	s.srv.stats.goroutinesParked.Add(1)
	return true
}

// parkAtStart parks a new session before its reader ever runs, and
// reports whether it did.
func (s *session) parkAtStart() bool {
	return s.sock != nil && s.srv.parker != nil && s.parkNow()
}

// parkNow registers the session's socket with the parker and arms its
// idle timeout, unless the server is stopping or the reader must stay.
func (s *session) parkNow() bool {
	due, timed := s.idleDue()
	p := &s.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != readerRunning && p.state != readerParkAsked || s.srv.shuttingDown() || s.register() != nil {
		return false
	}
	p.state = readerParked
	if timed {
		p.idle = time.AfterFunc(time.Until(due), s.resume)
	}
	s.srv.stats.parked.Add(1)
	return true
}

// register adds the session's socket to the parker. Caller holds
// parking.mu.
func (s *session) register() error {
	var err error
	if cerr := s.sock.raw.Control(func(fd uintptr) { err = s.srv.parker.add(s, int(fd)) }); cerr != nil {
		return cerr // closed meanwhile
	}
	return err
}

// idleDue is when a parked session's idle timeout closes it, if it has
// one: not while it holds a dedicated connection. Reader goroutine.
func (s *session) idleDue() (time.Time, bool) {
	idle := s.srv.cfg.Client.IdleTimeout
	if idle <= 0 {
		return time.Time{}, false
	}
	s.ded.mu.Lock()
	pinned := s.ded.conn != nil
	s.ded.mu.Unlock()
	return s.sock.lastRead.Add(idle), !pinned
}

// resume starts the reader of a parked session again on a new goroutine:
// its socket has input or hung up (the parker), its idle timeout is due,
// or the session is ending (its output is over, Shutdown). A session that
// is not parked is left alone. Safe from any goroutine.
func (s *session) resume() {
	p := &s.parking
	p.mu.Lock()
	if p.state != readerParked {
		p.mu.Unlock()
		return
	}
	p.state = readerRunning
	if p.idle != nil {
		p.idle.Stop()
		p.idle = nil
	}
	p.read.Store(true) // a full sweep interval before it may park again
	p.mu.Unlock()
	s.srv.parker.forget(s)
	s.srv.stats.parked.Add(-1)
	go s.resumeReading()
}

// stopReading ends the reader's reading for Shutdown: an immediate read
// deadline, and a parked reader resumed to see it.
func (s *session) stopReading(now time.Time) {
	_ = s.conn.SetReadDeadline(now)
	s.resume()
}

// shrink lets go of what an idle session can rebuild: the parser, the
// session's scratch (kept inside MULTI, where it holds the queued commands'
// telemetry), the outbox's reply ring and spare buffers. Reader goroutine.
func (s *session) shrink() {
	s.rd = nil // nothing is left unparsed: a new one is made at the next input
	if s.work != nil && len(s.work.txQueued) == 0 {
		s.work = nil
	}
	s.out.shrink()
}

// startParking starts the sweeper and the parker, unless parking is off
// (client.park_after negative) or not available here (it is then logged). They
// stop when the server does.
func (srv *Server) startParking() {
	every := srv.cfg.Client.ParkAfter
	if every <= 0 {
		return
	}
	p, err := newParker()
	if err != nil {
		srv.log.Info("idle clients keep their goroutine: parking is not available here", "error", err)
		return
	}
	srv.parker = p
	go srv.runParker(p)
	go srv.sweep(p, every)
}

// runParker runs p until it is closed. Should it fail, the sessions it
// holds are resumed (they keep a goroutine from then on).
func (srv *Server) runParker(p *parker) {
	err := p.run()
	if err == nil {
		return
	}
	srv.log.Error("parker failed; idle clients keep their goroutine from now on", "error", err)
	for _, s := range p.stop() {
		s.resume()
	}
}

// Returning memory to the OS after mass parking (see releaseMemory).
const (
	releaseAfterParks = 1000             // reader goroutines parked since the last release
	releaseEvery      = 10 * time.Second // at most this often
)

// sweep asks, every interval, the sessions that have read nothing since
// the previous sweep to park, until the server stops.
func (srv *Server) sweep(p *parker, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var released time.Time
	var lastParks int64
	for {
		select {
		case <-srv.stopping:
			p.stop()
			return
		case now := <-t.C:
			srv.mu.Lock()
			for sess := range srv.sessions {
				sess.askPark(now)
			}
			srv.mu.Unlock()
			srv.stats.sweeps.Add(1)
			parks := srv.stats.goroutinesParked.Load()
			if shouldRelease(parks, lastParks, now.Sub(released)) {
				srv.stats.goroutinesParked.Add(-parks)
				releaseMemory()
				released, parks = time.Now(), 0
			}
			lastParks = parks
		}
	}
}

// shouldRelease decides, at a sweep, whether to return memory to the OS:
// a thousand reader goroutines or more have parked since the last release
// and the wave of parking is over (none parked since the previous sweep),
// or ten times as many have; and not within releaseEvery of the last one.
func shouldRelease(parks, parksAtLastSweep int64, sinceRelease time.Duration) bool {
	if sinceRelease < releaseEvery || parks < releaseAfterParks {
		return false
	}
	return parks == parksAtLastSweep || parks >= 10*releaseAfterParks
}

// releaseMemory returns to the OS the memory that parked sessions let go
// of. Go frees a dead goroutine's stack only at a garbage collection, and
// its scavenger returns free pages only down to the heap goal of the last
// one, which a burst of activity has raised: without a collection and a
// scavenge, the process keeps the memory of every goroutine it ever ran at
// once. It runs from the sweeper (see shouldRelease), never per request.
func releaseMemory() { debug.FreeOSMemory() }

// Parked reports how many clients are parked: idle, with no goroutine.
func (srv *Server) Parked() int64 { return srv.stats.parked.Load() }
