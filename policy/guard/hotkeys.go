package guard

import (
	"hash/maphash"
	"math"
	"sync"
)

const (
	hotShards = 8
	// hotCountersPerK: the sketch keeps this many counters per reported key.
	// Space-saving overestimates a count by at most N/m (N observations in
	// the shard, m counters in it), and a key with frequency above N/m is
	// always kept.
	hotCountersPerK = 16
	hotHalfLife     = 10.0 // seconds
	// hotRenormalize: after this many half-lives since a shard's landmark
	// its counts are rescaled so that weights stay within float64 range.
	hotRenormalize = 32
)

// hotDecay is the decay rate per second.
var hotDecay = math.Ln2 / hotHalfLife

// hotKeys finds the most requested keys with the space-saving algorithm
// (Metwally et al.), sharded by key hash so sessions rarely contend, and
// with forward exponential decay (Cormode et al.): an observation at time t
// weighs exp(λ(t-landmark)), so counts are decayed request totals and
// count·λ estimates the current rate. Memory is hotShards × perShard
// counters whatever the key cardinality.
type hotKeys struct {
	seed     maphash.Seed
	perShard int
	shards   [hotShards]hotShard
}

type hotShard struct {
	mu       sync.Mutex       // guards everything below
	index    map[uint64]int32 // key hash -> position in heap
	heap     []hotCounter     // min-heap by count
	landmark int64            // nanoseconds: weights are exp(λ(t-landmark))
	_        [32]byte
}

type hotCounter struct {
	hash  uint64
	key   []byte  // statKey(key), reused when the counter is taken over
	count float64 // decayed weight, overestimated by at most err
	err   float64
	seen  int64
}

func newHotKeys(k int) *hotKeys {
	h := &hotKeys{seed: maphash.MakeSeed(), perShard: max(k*hotCountersPerK/hotShards, 8)}
	for i := range h.shards {
		h.shards[i].index = make(map[uint64]int32, h.perShard)
		h.shards[i].heap = make([]hotCounter, 0, h.perShard)
	}
	return h
}

// add counts one request for key at now. It allocates only while the
// shard fills up or when a longer key takes over a counter.
func (h *hotKeys) add(key []byte, now int64) {
	hash := maphash.Bytes(h.seed, key)
	s := &h.shards[hash%hotShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.weight(now)
	if i, ok := s.index[hash]; ok {
		c := &s.heap[i]
		c.count += w
		c.seen = now
		s.down(int(i))
		return
	}
	if len(s.heap) < h.perShard {
		s.heap = append(s.heap, hotCounter{hash: hash, key: append([]byte(nil), statKey(key)...), count: w, seen: now})
		s.index[hash] = int32(len(s.heap) - 1)
		s.up(len(s.heap) - 1)
		return
	}
	// Take over the smallest counter: its count becomes this key's error.
	c := &s.heap[0]
	delete(s.index, c.hash)
	c.hash, c.key, c.err, c.seen = hash, append(c.key[:0], statKey(key)...), c.count, now
	c.count += w
	s.index[hash] = 0
	s.down(0)
}

// weight returns the weight of an observation at now, rescaling the shard
// when the landmark is too old. The caller must hold s.mu.
func (s *hotShard) weight(now int64) float64 {
	age := float64(now-s.landmark) / 1e9 * hotDecay
	if age > hotRenormalize*math.Ln2 {
		scale := math.Exp(-age)
		for i := range s.heap {
			s.heap[i].count *= scale
			s.heap[i].err *= scale
		}
		s.landmark, age = now, 0
	}
	return math.Exp(age)
}

// up and down restore the heap order around i. The caller must hold s.mu.
func (s *hotShard) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if s.heap[parent].count <= s.heap[i].count {
			return
		}
		s.swap(i, parent)
		i = parent
	}
}

func (s *hotShard) down(i int) {
	for {
		least := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(s.heap) && s.heap[c].count < s.heap[least].count {
				least = c
			}
		}
		if least == i {
			return
		}
		s.swap(i, least)
		i = least
	}
}

func (s *hotShard) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.index[s.heap[i].hash] = int32(i)
	s.index[s.heap[j].hash] = int32(j)
}

// stats returns every counter as a rate at now, unsorted.
func (h *hotKeys) stats(g *Guard, now int64) []KeyStat {
	var out []KeyStat
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		scale := hotDecay * math.Exp(-float64(now-s.landmark)/1e9*hotDecay)
		for _, c := range s.heap {
			out = append(out, KeyStat{Key: string(c.key), Rate: c.count * scale,
				RateError: c.err * scale, Seen: g.wallTime(c.seen)})
		}
		s.mu.Unlock()
	}
	return out
}

// HotKeys returns the most requested keys by estimated rate, highest first,
// at most TopK.
func (g *Guard) HotKeys() []KeyStat {
	return topStats(g.hot.stats(g, g.now()), g.cfg.TopK, func(a, b *KeyStat) bool {
		if a.Rate != b.Rate {
			return a.Rate > b.Rate
		}
		return a.Key < b.Key
	})
}
