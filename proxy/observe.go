package proxy

import (
	"bytes"
	"time"
	"unsafe"

	"github.com/respguard/respguard/telemetry"
)

// errorCodes are the error prefixes reported as-is; others become "ERR"-like "other".
var errorCodes = []string{
	"ERR", "WRONGTYPE", "NOPERM", "NOAUTH", "WRONGPASS", "EXECABORT", "BUSY", "NOSCRIPT",
	"OOM", "LOADING", "MOVED", "ASK", "READONLY", "NOPROTO", "CROSSSLOT", "CLUSTERDOWN",
	"TRYAGAIN", "MASTERDOWN", "NOREPLICAS", "BUSYGROUP", "NOGROUP", "UNBLOCKED", "MISCONF",
}

// errorCode returns the interned first word of an error reply line ("-ERR ...").
func errorCode(reply []byte) string {
	if len(reply) < 2 || reply[0] != '-' {
		return ""
	}
	word := reply[1:]
	if i := bytes.IndexAny(word, " \r"); i >= 0 {
		word = word[:i]
	}
	for _, c := range errorCodes {
		if string(word) == c {
			return c
		}
	}
	return "other"
}

// decisions, by the slot's decision code.
var decisions = [...]string{decisionAllowed: "allowed", decisionDenied: "denied", decisionRewritten: "rewritten", decisionGuarded: "guarded"}

const (
	decisionAllowed uint8 = iota
	decisionDenied
	decisionRewritten
	decisionGuarded
)

// slotDone reports a completed slot to the guard's detectors and to
// telemetry. It runs with no lock held, after the write that sent the
// slot's reply (or its hand-off to the writer goroutine).
func (s *session) slotDone(sl *slot) {
	g := s.srv.guard.Load()
	observe := g != nil && sl.upstream && len(sl.key) > 0 && sl.errCode == ""
	if !observe && s.srv.tel == nil {
		return
	}
	done := nowAfter(sl.start) // one clock read for both
	if observe {
		g.ObserveAt(done, sl.name, sl.key, sl.elems, sl.size)
	}
	s.commandDone(sl, done)
}

// commandDone reports a slot completed at done to telemetry, on whichever
// goroutine completed or wrote the reply (see slotDone).
func (s *session) commandDone(sl *slot, done time.Time) {
	t := s.srv.tel
	if t == nil {
		return
	}
	c := telemetry.Command{
		Name: sl.name, Start: sl.start, Done: done, User: sl.user, ClientAddr: s.addr,
		DB: sl.db, Decision: decisions[sl.decision], ErrPrefix: sl.errCode, Queued: sl.queued,
	}
	if len(sl.stmt) > 0 {
		c.Statement = bytesToString(sl.stmt)
	}
	if sl.upstream {
		hp := s.srv.upstreamAddr.Load()
		c.ServerAddr, c.ServerPort = hp.host, hp.port
		if !sl.replyAt.IsZero() {
			c.Upstream = sl.replyAt.Sub(sl.start) // parse to Redis's first reply byte
		}
	}
	t.CommandDone(&c)
}

// nowAfter returns the current time as start plus the monotonic time
// elapsed since it: the same instant as time.Now (but for a wall-clock step
// in between) for one clock read instead of time.Now's two (wall and
// monotonic). start must come from time.Now.
func nowAfter(start time.Time) time.Time { return start.Add(time.Since(start)) }

// bytesToString views b as a string without copying; the string is valid
// only while b is unchanged (telemetry copies what it keeps).
func bytesToString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (s *Server) bytesOut(n int) {
	if s.tel != nil && n > 0 {
		s.tel.BytesOut(n)
	}
}

// trackTransaction collects the commands queued inside MULTI so that EXEC's
// span can parent theirs; EXEC's slot carries them to commandDone.
func (s *session) trackTransaction(name string, meta *slotMeta, stmt []byte) {
	w := s.work
	switch {
	case !s.ded.has(modeMulti): // written only by this (the reader) goroutine: no lock needed to read it
		w.txQueued = w.txQueued[:0]
	case name == "exec":
		meta.queued, w.txQueued = w.txQueued, nil
	case name == "discard":
		w.txQueued = w.txQueued[:0]
	default:
		w.txQueued = append(w.txQueued, telemetry.Command{Name: name, Start: meta.start, Statement: string(stmt), User: meta.user, DB: meta.db})
	}
}
