package guard

import (
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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
	// hotSampleEvery: once hotWarmup observations have been counted, one
	// observation in hotSampleEvery (chosen at random) is counted, with
	// hotSampleEvery times the weight. The estimates stay unbiased; the
	// sampling noise is reported in RateError.
	hotSampleEvery = 16
	hotWarmup      = 1024
)

// hotDecay is the decay rate per second.
var hotDecay = math.Ln2 / hotHalfLife

// hotKeys finds the most requested keys with the space-saving algorithm
// (Metwally et al.), sharded by key hash so sessions rarely contend, and
// with forward exponential decay (Cormode et al.): an observation at time t
// weighs exp(λ(t-landmark)), so counts are decayed request totals and
// count·λ estimates the current rate. Memory is hotShards × perShard
// counters whatever the key cardinality.
//
// Counting every request would cost a locked map and heap update each
// (hundreds of ns for a key that takes over a counter), so after a warm-up
// the sketch counts a random sample: an observation that is not sampled
// costs one random number.
type hotKeys struct {
	seed     maphash.Seed
	perShard int
	every    uint32                // sampling period after the warm-up; 1 counts everything
	random   func(n uint32) uint32 // uniform in [0,n); replaced by tests
	counted  atomic.Int64          // observations counted, up to hotWarmup
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
	h := &hotKeys{seed: maphash.MakeSeed(), perShard: max(k*hotCountersPerK/hotShards, 8),
		every: hotSampleEvery, random: rand.Uint32N}
	for i := range h.shards {
		h.shards[i].index = make(map[uint64]int32, h.perShard)
		h.shards[i].heap = make([]hotCounter, 0, h.perShard)
	}
	return h
}

// sample reports whether to count an observation, and with what weight
// (0: skip it).
func (h *hotKeys) sample() float64 {
	if h.every <= 1 || h.counted.Load() < hotWarmup {
		return 1
	}
	if h.random(h.every) != 0 {
		return 0
	}
	return float64(h.every)
}

// sampling reports whether the sketch has started sampling.
func (h *hotKeys) sampling() bool { return h.every > 1 && h.counted.Load() >= hotWarmup }

// add counts one request for key at now, with weight times the weight of
// a single request (see sample). It allocates only while the shard fills
// up or when a longer key takes over a counter.
func (h *hotKeys) add(key []byte, now int64, weight float64) {
	if h.counted.Load() < hotWarmup {
		h.counted.Add(1)
	}
	hash := maphash.Bytes(h.seed, key)
	s := &h.shards[hash%hotShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.weight(now) * weight
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

// stats returns every counter as a rate at now, unsorted. RateError is
// the space-saving bound plus, once sampling, two standard deviations of
// the sampling noise: counting each request with probability 1/R at
// weight R adds a variance of at most ·λ·Rate to a rate estimate.
func (h *hotKeys) stats(g *Guard, now int64) []KeyStat {
	var out []KeyStat
	noise := 0.0
	if h.sampling() {
		noise = float64(h.every-1) * hotDecay
	}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		scale := hotDecay * math.Exp(-float64(now-s.landmark)/1e9*hotDecay)
		for _, c := range s.heap {
			rate := c.count * scale
			out = append(out, KeyStat{Key: string(c.key), Rate: rate,
				RateError: c.err*scale + 2*math.Sqrt(noise*rate), Seen: g.wallTime(c.seen)})
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
