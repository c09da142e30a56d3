package proxy

import (
	"net"
	"sync"
	"time"
)

// AuthRateLimitedText is the reply to AUTH (or HELLO ... AUTH) from a client
// address over its failed-attempt budget; the password is not checked.
const AuthRateLimitedText = "ERR respguard: too many failed AUTH attempts from this address; retry later"

// maxTrackedIPs caps the addresses the AUTH limiter remembers at once.
const maxTrackedIPs = 1 << 16

// SetAuthRateLimit allows each client IP perMinute failed AUTH attempts per
// minute (a token bucket: a burst of perMinute, then one more every
// minute/perMinute). Over it, AUTH and HELLO AUTH are refused without
// checking the password. perMinute <= 0 turns limiting off, which is also
// the state of a new Server. Calling it again starts afresh.
func (s *Server) SetAuthRateLimit(perMinute int) {
	if perMinute <= 0 {
		s.authLimit.Store(nil)
		return
	}
	s.authLimit.Store(newAuthLimiter(perMinute, time.Now))
}

// authAllowed reports whether the client at addr may try a password now.
// A refusal is counted as a failed authentication; the first refusal of a
// blocked spell is logged (not each one: a brute force must not flood the log).
func (s *Server) authAllowed(addr, user string) bool {
	ok, first := s.authLimit.Load().allow(clientIP(addr))
	if ok {
		return true
	}
	s.stats.authFailures.Add(1)
	if s.tel != nil {
		s.tel.AuthFailure()
	}
	if first {
		s.log.Warn("authentication rate limited: too many failed AUTH attempts; refusing AUTH from this address for now",
			"client", addr, "user", user)
	}
	return false
}

// authFailedAt charges a failed attempt to the client at addr.
func (s *Server) authFailedAt(addr string) {
	s.authLimit.Load().fail(clientIP(addr))
}

func clientIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// authLimiter is a token bucket of failed AUTH attempts per client IP.
// Memory is bounded: buckets that refilled are swept once a minute, and at
// most maxTrackedIPs are kept (beyond that an arbitrary one is forgotten).
// A nil *authLimiter allows everything. Safe for concurrent use.
type authLimiter struct {
	burst    float64
	interval time.Duration // per token regained
	now      func() time.Time

	mu        sync.Mutex // guards the fields below
	buckets   map[string]*authBucket
	lastSweep time.Time
}

type authBucket struct {
	tokens  float64
	at      time.Time // when tokens was computed
	blocked bool      // a refusal was already reported in this spell
}

func newAuthLimiter(perMinute int, now func() time.Time) *authLimiter {
	return &authLimiter{
		burst: float64(perMinute), interval: time.Minute / time.Duration(perMinute), now: now,
		buckets: make(map[string]*authBucket), lastSweep: now(),
	}
}

// allow reports whether ip has an attempt left, and on a refusal whether
// it is the first of this blocked spell.
func (l *authLimiter) allow(ip string) (ok, first bool) {
	if l == nil {
		return true, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		return true, false
	}
	l.refill(b, l.now())
	if b.tokens >= 1 {
		b.blocked = false
		return true, false
	}
	first = !b.blocked
	b.blocked = true
	return false, first
}

// fail spends one of ip's attempts.
func (l *authLimiter) fail(ip string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	b := l.buckets[ip]
	if b == nil {
		l.makeRoom()
		b = &authBucket{tokens: l.burst, at: now}
		l.buckets[ip] = b
	}
	l.refill(b, now)
	b.tokens = max(b.tokens-1, 0)
}

// refill credits b with the tokens regained since b.at. Caller must hold mu.
func (l *authLimiter) refill(b *authBucket, now time.Time) {
	if gained := now.Sub(b.at); gained > 0 {
		b.tokens = min(l.burst, b.tokens+float64(gained)/float64(l.interval))
		b.at = now
	}
}

// sweep forgets full buckets, at most once a minute. Caller must hold mu.
func (l *authLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for ip, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, ip)
		}
	}
}

// makeRoom forgets an arbitrary bucket when the map is full. Caller must hold mu.
func (l *authLimiter) makeRoom() {
	if len(l.buckets) < maxTrackedIPs {
		return
	}
	for ip := range l.buckets {
		delete(l.buckets, ip)
		return
	}
}
