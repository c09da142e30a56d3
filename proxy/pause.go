package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/proxy/resp"
)

// pauseMode is what CLIENT PAUSE holds: the more restrictive mode is the
// greater.
type pauseMode uint8

const (
	pauseNone  pauseMode = iota
	pauseWrite           // commands that write or may replicate
	pauseAll             // every command
)

// clientPause is a CLIENT PAUSE in force over respguard's clients (this
// instance's only: Redis itself is not paused, so its other clients, and
// other respguard instances, run on). As in Redis, a new pause keeps the
// more restrictive mode and the later end of the two.
//
// mu guards mode, end and changed; on mirrors mode != pauseNone for the
// sessions' per-command check.
type clientPause struct {
	on      atomic.Bool
	mu      sync.Mutex
	mode    pauseMode
	end     time.Time
	changed chan struct{} // closed (and replaced) whenever mode or end changes
}

// current returns the pause in force and a channel closed when it changes.
func (p *clientPause) current() (pauseMode, time.Time, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	if p.mode != pauseNone && !time.Now().Before(p.end) {
		p.setLocked(pauseNone, time.Time{})
	}
	return p.mode, p.end, p.changed
}

// pause starts or extends a pause until end.
func (p *clientPause) pause(mode pauseMode, end time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !time.Now().Before(end) && p.mode == pauseNone {
		return // CLIENT PAUSE 0: over before it starts
	}
	p.setLocked(max(mode, p.mode), maxTime(end, p.end))
}

// unpause ends the pause.
func (p *clientPause) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(pauseNone, time.Time{})
}

// setLocked changes the pause and wakes its waiters. Caller holds mu.
func (p *clientPause) setLocked(mode pauseMode, end time.Time) {
	p.mode, p.end = mode, end
	p.on.Store(mode != pauseNone)
	if p.changed != nil {
		close(p.changed)
	}
	p.changed = make(chan struct{})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pauseGate is a session's part in CLIENT PAUSE. waiting is read by CLIENT
// LIST (the client shows as blocked, flag b, as a postponed client does in
// Redis); the rest is reader-goroutine state.
type pauseGate struct {
	waiting  atomic.Bool
	txWrites bool // a command queued in the open MULTI writes or may replicate: EXEC does too
}

// mayReplicate lists the commands that Redis 7.0 flags may_replicate
// (COMMAND does not show the flag) and that are not flagged write: under
// CLIENT PAUSE WRITE, Redis holds them too.
var mayReplicate = map[string]bool{
	"eval": true, "evalsha": true, "fcall": true, "fcallsha": true,
	"publish": true, "spublish": true, "pfcount": true,
}

// pausesOnWrite reports whether Redis holds args under CLIENT PAUSE WRITE:
// it writes or may replicate, or it is an EXEC whose transaction does.
func (s *session) pausesOnWrite(table *policy.Commands, name string, args [][]byte) bool {
	if name == "exec" {
		return s.ded.has(modeMulti) && s.pause.txWrites
	}
	if mayReplicate[name] {
		return true
	}
	info := table.Info(args)
	if info == nil {
		return false
	}
	for _, f := range info.Flags {
		if f == "write" {
			return true
		}
	}
	return false
}

// noteTx records, for EXEC under a write pause, whether the transaction
// queued a command that writes.
func (s *session) noteTx(table *policy.Commands, name string, args [][]byte) {
	switch {
	case name == "multi":
		s.pause.txWrites = false
	case s.ded.has(modeMulti) && name != "exec" && name != "discard" && name != "watch":
		s.pause.txWrites = s.pause.txWrites || s.pausesOnWrite(table, name, args)
	}
}

// holdWhilePaused holds the command (and so the client's later ones) while
// a CLIENT PAUSE applies to it, as Redis postpones a client: every command
// in ALL mode (CLIENT UNPAUSE too), the writing ones in WRITE mode. It
// returns false when the session is to end instead (the server stops, or
// the client is killed); the command then gets no reply.
func (s *session) holdWhilePaused(table *policy.Commands, name string, args [][]byte) bool {
	if s.ded.has(modeMulti) || name == "multi" {
		s.noteTx(table, name, args)
	}
	if !s.srv.paused.on.Load() {
		return true
	}
	var closed <-chan struct{}
	watching := false
	for {
		mode, end, changed := s.srv.paused.current()
		if mode == pauseNone || mode == pauseWrite && !s.pausesOnWrite(table, name, args) {
			s.pause.waiting.Store(false)
			return true
		}
		if !watching {
			watching = true
			s.pause.waiting.Store(true)
			s.publish() // CLIENT LIST shows the held command
			var stop func()
			closed, stop = s.watchClose()
			defer stop()
		}
		if !s.waitPauseChange(end, changed, closed) {
			s.pause.waiting.Store(false)
			return false
		}
	}
}

// waitPauseChange waits until the pause changes or ends; false: the session
// is to end instead (the server stops, the client is killed or left).
func (s *session) waitPauseChange(end time.Time, changed, closed <-chan struct{}) bool {
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-s.srv.stopping:
		return false
	case <-s.out.done(): // killed, or the output ended otherwise: no reply can go
		return false
	case <-closed:
		return false
	}
	return true
}

// clientPause answers CLIENT PAUSE timeout [WRITE|ALL] for respguard's
// clients, with Redis 7.0's checks and errors.
func (s *session) clientPause(args [][]byte) []byte {
	if len(args) != 3 && len(args) != 4 {
		if len(args) < 3 {
			return wrongArgs("client|pause")
		}
		return resp.AppendError(nil, "ERR unknown subcommand or wrong number of arguments for '"+string(args[1])+"'. Try CLIENT HELP.")
	}
	mode := pauseAll
	if len(args) == 4 {
		switch {
		case equalFold(args[3], "write"):
			mode = pauseWrite
		case equalFold(args[3], "all"):
		default:
			return resp.AppendError(nil, "ERR CLIENT PAUSE mode must be WRITE or ALL")
		}
	}
	ms, ok := resp.ParseInt(args[2])
	now := time.Now().UnixMilli()
	switch {
	case !ok:
		return resp.AppendError(nil, "ERR timeout is not an integer or out of range")
	case ms < 0:
		return resp.AppendError(nil, "ERR timeout is negative")
	}
	// As in Redis 7.0, an end past the int64 range wraps into the past: no pause.
	s.srv.paused.pause(mode, time.UnixMilli(now+ms))
	return resp.AppendSimple(nil, "OK")
}

// clientUnpause answers CLIENT UNPAUSE.
func (s *session) clientUnpause(args [][]byte) []byte {
	if len(args) != 2 {
		return wrongArgs("client|unpause")
	}
	s.srv.paused.unpause()
	return resp.AppendSimple(nil, "OK")
}

// clientNoEvict answers CLIENT NO-EVICT on|off. respguard evicts no
// client, so it only records the flag, which CLIENT LIST shows (e).
func (s *session) clientNoEvict(args [][]byte) []byte {
	if len(args) != 3 {
		return wrongArgs("client|no-evict")
	}
	switch {
	case equalFold(args[2], "on"):
		s.noEvict.Store(true)
	case equalFold(args[2], "off"):
		s.noEvict.Store(false)
	default:
		return resp.AppendError(nil, "ERR syntax error")
	}
	return resp.AppendSimple(nil, "OK")
}
