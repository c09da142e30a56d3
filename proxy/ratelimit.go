package proxy

import (
	"hash/maphash"
	"net"
	"sync"
	"time"
)

// AuthRateLimitedText is the reply to AUTH (or HELLO ... AUTH) with a new
// password for a user that has had too many different wrong passwords from
// the client's address lately; the password is not checked.
const AuthRateLimitedText = "ERR respguard: too many failed AUTH attempts for this user from this address; retry later"

const (
	// maxTrackedBuckets caps the (address, user) pairs the AUTH limiter
	// remembers at once.
	maxTrackedBuckets = 1 << 16
	// maxAuthWait is the longest an attempt over the budget is held before
	// being checked; past it the attempt is refused.
	maxAuthWait = 10 * time.Second
	// rememberedFailures is how many distinct wrong passwords a bucket
	// recognises when they are tried again.
	rememberedFailures = 8
)

// SetAuthRateLimit bounds password guessing: each (client IP, user name)
// pair may try perMinute different wrong passwords per minute (a token
// bucket: a burst of perMinute, then one more every minute/perMinute).
//
// Only guesses are charged. A successful AUTH costs nothing, and repeating
// one of the pair's recent wrong passwords (a misconfigured worker retrying
// its stale password) costs nothing either: it teaches an attacker nothing
// and gets WRONGPASS at once. So one client's failures never lock out a
// client with valid credentials, even when every client shares 127.0.0.1
// as behind a sidecar, unless someone is guessing that user's password from
// that same address; then a new password waits for the next attempt (at
// most maxAuthWait, else it is refused). perMinute <= 0 turns limiting off,
// which is also the state of a new Server. Calling it again starts afresh.
func (s *Server) SetAuthRateLimit(perMinute int) {
	if perMinute <= 0 {
		s.authLimit.Store(nil)
		return
	}
	s.authLimit.Store(newAuthLimiter(perMinute, time.Now))
}

// authAttempt is one AUTH's standing with the limiter, from reserve.
type authAttempt struct {
	limiter *authLimiter
	key     authKey
	print   uint64        // the password's fingerprint (never the password)
	wait    time.Duration // hold the attempt this long before checking it
	charged bool          // a token was taken; refunded on success
	refused bool          // over the budget even after maxAuthWait
	first   bool          // refused, and the first refusal of this spell
}

// authKey is what the limiter accounts failures to.
type authKey struct{ ip, user string }

// authLimiter is a token bucket of wrong-password guesses per (client IP,
// user). Memory is bounded: buckets that refilled are swept once a minute,
// and at most maxTrackedBuckets are kept (beyond that an arbitrary one is
// forgotten). A nil *authLimiter allows everything. Safe for concurrent use.
type authLimiter struct {
	burst    float64
	interval time.Duration // per token regained
	now      func() time.Time
	seed     maphash.Seed // fingerprints are keyed per process

	mu        sync.Mutex // guards the fields below
	buckets   map[authKey]*authBucket
	lastSweep time.Time
}

type authBucket struct {
	tokens  float64   // may go negative: attempts waiting for a token
	at      time.Time // when tokens was computed
	blocked bool      // a refusal was already reported in this spell
	wrong   [rememberedFailures]uint64
	next    int // ring index into wrong
}

func newAuthLimiter(perMinute int, now func() time.Time) *authLimiter {
	return &authLimiter{
		burst: float64(perMinute), interval: time.Minute / time.Duration(perMinute), now: now,
		seed: maphash.MakeSeed(), buckets: make(map[authKey]*authBucket), lastSweep: now(),
	}
}

// reserve decides how an AUTH for user from ip with password is handled.
func (l *authLimiter) reserve(ip, user, password string) authAttempt {
	if l == nil {
		return authAttempt{}
	}
	a := authAttempt{limiter: l, key: authKey{ip, user}, print: maphash.String(l.seed, password)}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(a.key, now)
	if b.knownWrong(a.print) {
		return a // no new guess: checked (and refused) at no cost
	}
	l.refill(b, now)
	b.tokens--
	if b.tokens >= 0 {
		b.blocked = false
		a.charged = true
		return a
	}
	a.wait = time.Duration(-b.tokens * float64(l.interval))
	if a.wait > maxAuthWait {
		b.tokens++
		a.wait, a.refused = 0, true
		a.first, b.blocked = !b.blocked, true
		return a
	}
	a.charged = true
	return a
}

// done reports the attempt's outcome: a success gives its token back, a
// failure remembers the password's fingerprint.
func (a authAttempt) done(ok bool) {
	l := a.limiter
	if l == nil || a.refused {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[a.key]
	if b == nil {
		return // swept meanwhile
	}
	switch {
	case ok && a.charged:
		if b.tokens++; b.tokens >= l.burst && b.wrong == [rememberedFailures]uint64{} {
			delete(l.buckets, a.key) // nothing to remember
		}
	case !ok && !b.knownWrong(a.print):
		b.wrong[b.next] = a.print
		b.next = (b.next + 1) % rememberedFailures
	}
}

// cancel gives back the token of an attempt that was never checked.
func (a authAttempt) cancel() { a.done(true) }

func (b *authBucket) knownWrong(print uint64) bool {
	for _, w := range b.wrong {
		if w == print && w != 0 {
			return true
		}
	}
	return false
}

// bucket returns key's bucket, creating a full one. Caller must hold mu.
func (l *authLimiter) bucket(key authKey, now time.Time) *authBucket {
	l.sweep(now)
	b := l.buckets[key]
	if b == nil {
		l.makeRoom()
		b = &authBucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	return b
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
	for key, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, key)
		}
	}
}

// makeRoom forgets an arbitrary bucket when the map is full. Caller must hold mu.
func (l *authLimiter) makeRoom() {
	if len(l.buckets) < maxTrackedBuckets {
		return
	}
	for key := range l.buckets {
		delete(l.buckets, key)
		return
	}
}

func clientIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
