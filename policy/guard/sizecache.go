package guard

import (
	"hash/maphash"
	"sync"
	"time"
)

const (
	sizeCacheShards   = 16
	sizeCacheCapacity = 1 << 16 // entries across all shards
	maxCachedKeyLen   = 1024    // longer keys are not cached (bounds memory)
)

// sizeCache remembers collection sizes (elements) per key for a short TTL,
// so that repeated guarded reads of the same key skip their probes. It is
// bounded: a full shard forgets an arbitrary entry. Keys are not qualified
// by database: a proxy that serves several databases may, for one TTL, judge
// a key by a same-named key's size in another database.
type sizeCache struct {
	ttl    int64 // nanoseconds; <= 0 disables the cache
	seed   maphash.Seed
	shards [sizeCacheShards]sizeShard
}

type sizeShard struct {
	mu      sync.Mutex // guards entries
	entries map[string]sizeEntry
	_       [40]byte // keep shards on separate cache lines
}

type sizeEntry struct {
	size    int64
	expires int64 // nanoseconds on the guard's clock
}

func newSizeCache(ttl time.Duration) *sizeCache {
	c := &sizeCache{ttl: int64(ttl), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]sizeEntry)
	}
	return c
}

func (c *sizeCache) shard(key []byte) *sizeShard {
	return &c.shards[maphash.Bytes(c.seed, key)%sizeCacheShards]
}

// get returns key's size if it was learned less than the TTL before now.
func (c *sizeCache) get(key []byte, now int64) (int64, bool) {
	if c.ttl <= 0 {
		return 0, false
	}
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.entries[string(key)]
	s.mu.Unlock()
	return e.size, ok && now < e.expires
}

// put records key's size at now. It copies key.
func (c *sizeCache) put(key []byte, size, now int64) {
	if c.ttl <= 0 || len(key) > maxCachedKeyLen || size < 0 {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[string(key)]; !ok && len(s.entries) >= sizeCacheCapacity/sizeCacheShards {
		s.evict(now)
	}
	s.entries[string(key)] = sizeEntry{size, now + c.ttl}
}

// evict looks at a few entries in map order (effectively random) and drops
// the expired ones among them, or the first if none has expired: O(1) per
// insertion however full the shard is. The caller must hold s.mu.
func (s *sizeShard) evict(now int64) {
	const sample = 8
	seen, dropped := 0, false
	var first string
	for k, e := range s.entries {
		if seen == 0 {
			first = k
		}
		if now >= e.expires {
			delete(s.entries, k)
			dropped = true
		}
		if seen++; seen == sample {
			break
		}
	}
	if !dropped {
		delete(s.entries, first)
	}
}

// forget drops key (it was deleted).
func (c *sizeCache) forget(key []byte) {
	if c.ttl <= 0 {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	delete(s.entries, string(key))
	s.mu.Unlock()
}
