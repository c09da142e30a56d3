package cluster

import (
	"time"

	"github.com/respguard/respguard/pool"
)

// poolKey names a node pool. A replica read from gets a READONLY pool of its
// own, so a primary's pool never serves stale reads, even from a node that
// was demoted before the map caught up.
type poolKey struct {
	addr     string
	readOnly bool
}

// registry owns every node pool. Not safe for concurrent use: Cluster.mu
// guards it.
type registry struct {
	cfg    Config
	pools  map[poolKey]*registered
	closed bool // after Cluster.Close: no new pools
}

// registered is a pool and since when no topology has used it.
type registered struct {
	pool        *pool.Pool
	unusedSince time.Time // zero while in use
}

func newRegistry(cfg Config) *registry {
	return &registry{cfg: cfg, pools: make(map[poolKey]*registered)}
}

// get returns the pool for key, creating it if needed; nil after close or
// when the address is invalid (pool.New refused it).
func (r *registry) get(key poolKey) *pool.Pool {
	if e := r.pools[key]; e != nil {
		e.unusedSince = time.Time{}
		return e.pool
	}
	if r.closed {
		return nil
	}
	p, err := pool.New(r.cfg.nodeConfig(key.addr, key.readOnly))
	if err != nil {
		return nil
	}
	r.pools[key] = &registered{pool: p}
	return p
}

// retire forgets and returns the pools that t does not use and that have
// not been used for grace (counted from the first retire that found them
// unused), for the caller to close. The grace lets callers that looked a
// pool up just before a topology change finish with it.
func (r *registry) retire(t *topology, now time.Time, grace time.Duration) []*pool.Pool {
	used := t.uses()
	var out []*pool.Pool
	for k, e := range r.pools {
		switch {
		case used[k]:
			e.unusedSince = time.Time{}
		case e.unusedSince.IsZero():
			e.unusedSince = now
		case now.Sub(e.unusedSince) >= grace:
			out = append(out, e.pool)
			delete(r.pools, k)
		}
	}
	return out
}

// closeAll forgets every pool, refuses new ones, and returns the pools for
// the caller to close.
func (r *registry) closeAll() []*pool.Pool {
	r.closed = true
	out := make([]*pool.Pool, 0, len(r.pools))
	for k, e := range r.pools {
		out = append(out, e.pool)
		delete(r.pools, k)
	}
	return out
}

// all returns every pool.
func (r *registry) all() []*pool.Pool {
	out := make([]*pool.Pool, 0, len(r.pools))
	for _, e := range r.pools {
		out = append(out, e.pool)
	}
	return out
}
