package guard

import "sync/atomic"

// Stats are the guard's counters since New, for metrics. All are monotonic.
type Stats struct {
	Unlinks      uint64 // DEL sent as UNLINK (mode always)
	UnlinkEvals  uint64 // DEL sent as the UNLINK-or-DEL script (mode large)
	FlushAsync   uint64 // FLUSHALL/FLUSHDB given ASYNC
	StreamMaxlen uint64 // XADD given MAXLEN ~ N
	Oversize     uint64 // reads refused (oversize=reject): over the limit, or their size unchecked
	Audited      uint64 // reads above the limit, or unchecked, let through (oversize=audit)
	RequireTTL   uint64 // writes refused by require_ttl
	ProbePlans   uint64 // Plans that returned Probe (a size cache miss)
	Probes       uint64 // probe commands in those plans
	CacheHits    uint64 // guarded reads decided from the size cache
}

// counters holds Stats as atomics; every field is updated independently.
type counters struct {
	unlinks, unlinkEvals, flushAsync, streamMaxlen atomic.Uint64
	oversize, audited, requireTTL                  atomic.Uint64
	probePlans, probes, cacheHits                  atomic.Uint64
}

// Stats returns a snapshot of the counters (each read atomically, not all
// at one instant).
func (g *Guard) Stats() Stats {
	c := &g.stats
	return Stats{
		Unlinks: c.unlinks.Load(), UnlinkEvals: c.unlinkEvals.Load(),
		FlushAsync: c.flushAsync.Load(), StreamMaxlen: c.streamMaxlen.Load(),
		Oversize: c.oversize.Load(), Audited: c.audited.Load(), RequireTTL: c.requireTTL.Load(),
		ProbePlans: c.probePlans.Load(), Probes: c.probes.Load(), CacheHits: c.cacheHits.Load(),
	}
}
