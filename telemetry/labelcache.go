package telemetry

import (
	"sync"
	"sync/atomic"
)

// labelCache maps a label key (a command name, an error prefix, a
// (command, reason) pair) to values precomputed once per key, such as
// attribute-set options, so the hot path records metrics without
// allocating. Reads are one atomic load and a map lookup; a new key copies
// the map (keys are few and arrive early). At most limit keys are kept;
// later ones all share the value built for overflow, so a caller cannot
// grow label cardinality without bound.
type labelCache[K comparable, V any] struct {
	current atomic.Pointer[map[K]V] // immutable once published

	mu       sync.Mutex // serializes writers; readers never take it
	limit    int
	overflow K
	build    func(K) V // called with mu held
	clone    func(K) K // detaches a key from caller-owned memory; may be nil
}

func newLabelCache[K comparable, V any](limit int, overflow K, build func(K) V, clone func(K) K) *labelCache[K, V] {
	c := &labelCache[K, V]{limit: limit, overflow: overflow, build: build, clone: clone}
	c.current.Store(&map[K]V{overflow: build(overflow)})
	return c
}

// get returns the value for k, building it on first use.
func (c *labelCache[K, V]) get(k K) V {
	if v, ok := (*c.current.Load())[k]; ok {
		return v
	}
	return c.add(k)
}

func (c *labelCache[K, V]) add(k K) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.current.Load()
	if v, ok := old[k]; ok {
		return v
	}
	if len(old) > c.limit {
		return old[c.overflow]
	}
	if c.clone != nil {
		k = c.clone(k)
	}
	next := make(map[K]V, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	v := c.build(k)
	next[k] = v
	c.current.Store(&next)
	return v
}
