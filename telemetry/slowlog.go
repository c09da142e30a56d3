package telemetry

import (
	"sync"
	"time"
)

// SlowEntry is one slow-log record: a command whose total time (parse to
// reply handed to the client writer, queueing included) exceeded
// telemetry.slowlog.threshold. Strings are copies owned by the entry.
type SlowEntry struct {
	ID         uint64        `json:"id"`          // increasing, starting at 1
	Time       time.Time     `json:"time"`        // when the command was parsed
	Duration   time.Duration `json:"duration_ns"` // total time
	Upstream   time.Duration `json:"upstream_ns"` // time waiting on Redis
	Command    string        `json:"command"`     // lower-case name
	Statement  string        `json:"statement"`   // redacted per traces.statement
	User       string        `json:"user,omitempty"`
	ClientAddr string        `json:"client_addr,omitempty"`
	DB         int           `json:"db"`
	Decision   string        `json:"decision,omitempty"`
	Error      string        `json:"error,omitempty"` // Redis error prefix, "" for success
}

// slowlog is a bounded ring of the most recent slow entries.
type slowlog struct {
	mu      sync.Mutex  // guards all fields
	entries []SlowEntry // ring storage, len <= cap, cap = max length
	next    int         // index the next entry is written at, once full
	lastID  uint64
}

func newSlowlog(maxLen int) *slowlog {
	return &slowlog{entries: make([]SlowEntry, 0, maxLen)}
}

// add stores e (its ID is assigned here), evicting the oldest when full.
func (s *slowlog) add(e SlowEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(s.entries) == 0 {
		return
	}
	s.lastID++
	e.ID = s.lastID
	if len(s.entries) < cap(s.entries) {
		s.entries = append(s.entries, e)
		return
	}
	s.entries[s.next] = e
	s.next = (s.next + 1) % len(s.entries)
}

// snapshot returns a copy of the entries, newest first.
func (s *slowlog) snapshot() []SlowEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.entries)
	out := make([]SlowEntry, 0, n)
	newest := (s.next - 1 + n) % max(n, 1)
	for i := range n {
		out = append(out, s.entries[(newest-i+n)%n])
	}
	return out
}

func (s *slowlog) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *slowlog) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.entries)
	s.entries = s.entries[:0]
	s.next = 0
}

// Slowlog returns a copy of the slow log, newest entry first (like Redis's
// SLOWLOG GET). It is empty when the slow log is disabled.
func (t *Telemetry) Slowlog() []SlowEntry { return t.slowlog.snapshot() }

// ResetSlowlog empties the slow log (entry IDs keep increasing).
func (t *Telemetry) ResetSlowlog() { t.slowlog.reset() }
