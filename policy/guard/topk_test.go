package guard

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestHotKeysOnZipf feeds 1M requests over 100k keys drawn from a Zipf
// distribution and compares the sketch with the exact counts.
//
// Counting every request: the top 20 come out in the exact order, every
// reported count is within the space-saving bound of the truth, and at
// least 48 of the true top 50 are reported.
//
// Sampling (the default): the top 5 come out in the exact order, at least
// 18 of the true top 20 are in the reported top 20 and 45 of the top 50
// in the top 50, and every reported count is within its RateError of the
// truth (2.5 RateErrors below it: RateError is the space-saving bound plus
// two standard deviations of sampling noise, so a 5-sigma band).
func TestHotKeysOnZipf(t *testing.T) {
	t.Run("counting every request", func(t *testing.T) {
		testHotKeysOnZipf(t, zipfWant{sampled: false, ordered: 20, inTop20: 20, inTop50: 48})
	})
	t.Run("sampling", func(t *testing.T) {
		testHotKeysOnZipf(t, zipfWant{sampled: true, ordered: 5, inTop20: 18, inTop50: 45})
	})
}

type zipfWant struct {
	sampled                   bool
	ordered, inTop20, inTop50 int
}

func testHotKeysOnZipf(t *testing.T, want zipfWant) {
	const requests, keys, k = 1_000_000, 100_000, 50
	g := newGuard(t, Config{TopK: k})
	g.now = func() int64 { return 0 } // no decay: counts are plain counts
	rng := rand.New(rand.NewPCG(1, 2))
	g.hot.random = rand.New(rand.NewPCG(3, 4)).Uint32N
	if !want.sampled {
		g.hot.every = 1
	}
	zipf := rand.NewZipf(rng, 1.1, 1, keys-1)
	truth := make([]int, keys)
	names := make([][]byte, keys)
	for i := range names {
		names[i] = fmt.Appendf(nil, "user:%d", i)
	}
	for range requests {
		i := zipf.Uint64()
		truth[i]++
		g.Observe("get", names[i], -1, 10)
	}
	if g.hot.sampling() != want.sampled {
		t.Fatalf("sampling = %v", g.hot.sampling())
	}
	hot := g.HotKeys()
	if len(hot) != k {
		t.Fatalf("HotKeys returned %d entries", len(hot))
	}
	order := make([]int, keys)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return truth[order[a]] > truth[order[b]] })

	scale := hotDecay // Rate = count·λ when nothing has decayed
	// Space-saving's guarantee per shard: overestimate <= N_shard/m_shard,
	// where N_shard is the sum of the shard's counters.
	var bound float64
	for i := range g.hot.shards {
		var n float64
		for _, c := range g.hot.shards[i].heap {
			n += c.count
		}
		bound = max(bound, n/float64(g.hot.perShard))
	}
	trueTop := func(n int) map[string]bool {
		m := map[string]bool{}
		for _, i := range order[:n] {
			m[string(names[i])] = true
		}
		return m
	}
	top20, top50 := trueTop(20), trueTop(50)
	found20, found50, maxErr := 0, 0, 0.0
	for rank, e := range hot {
		var idx int
		fmt.Sscanf(e.Key, "user:%d", &idx)
		got, exact, errBound := e.Rate/scale, float64(truth[idx]), e.RateError/scale
		over, under := bound, 1e-6 // what the bound allows above and below the truth
		if want.sampled {
			over, under = errBound*2.5, errBound*2.5
		}
		if got < exact-under || got-exact > over || !want.sampled && errBound > bound {
			t.Errorf("rank %d %s: count %.0f, truth %.0f, error bound %.0f", rank, e.Key, got, exact, errBound)
		}
		if rank < want.ordered && e.Key != string(names[order[rank]]) {
			t.Errorf("rank %d: %s (%.0f), want %s (%d)", rank, e.Key, got, names[order[rank]], truth[order[rank]])
		}
		if rank < 20 && top20[e.Key] {
			found20++
		}
		if top50[e.Key] {
			found50++
		}
		maxErr = max(maxErr, math.Abs(got-exact))
	}
	if found20 < want.inTop20 || found50 < want.inTop50 {
		t.Errorf("found %d of the true top 20 in the top 20, %d of the top 50", found20, found50)
	}
	t.Logf("recall top-20 %d/20, top-50 %d/50; largest error %.0f (space-saving bound N/m %.0f); #1 %s count %.0f±%.0f (truth %d)",
		found20, found50, maxErr, bound, hot[0].Key, hot[0].Rate/scale, hot[0].RateError/scale, truth[order[0]])
}

func TestHotKeysDecay(t *testing.T) {
	g := newGuard(t, Config{TopK: 2})
	g.hot.every = 1 // exact counts
	var now int64
	g.now = func() int64 { return now }
	for range 1000 {
		g.Observe("get", []byte("old"), -1, 1)
	}
	now += int64(60 * time.Second) // six half-lives: old's weight is 1000/64
	for range 100 {
		g.Observe("get", []byte("new"), -1, 1)
	}
	hot := g.HotKeys()
	if len(hot) != 2 || hot[0].Key != "new" || hot[1].Key != "old" {
		t.Fatalf("HotKeys = %+v", hot)
	}
	if r := hot[1].Rate / hot[0].Rate; r < 0.15 || r > 0.16 {
		t.Fatalf("old/new = %.3f, want 1000/64/100 = 0.156", r)
	}
	now += int64(hotRenormalize * 11 * time.Second) // past a renormalization
	g.Observe("get", []byte("new"), -1, 1)
	if hot := g.HotKeys(); hot[0].Key != "new" || hot[0].Rate <= 0 {
		t.Fatalf("after renormalization HotKeys = %+v", hot)
	}
}

// TestBigKeysAreExact: whatever the order and the number of small keys,
// the table holds exactly the k largest.
func TestBigKeysAreExact(t *testing.T) {
	const k = 20
	g := newGuard(t, Config{TopK: k})
	rng := rand.New(rand.NewPCG(3, 4))
	type kv struct {
		key  string
		size int64
	}
	var all []kv
	for i := range 50_000 {
		all = append(all, kv{fmt.Sprintf("k%d", i), rng.Int64N(1_000_000)})
	}
	for _, i := range rng.Perm(len(all)) {
		g.Observe("hlen", []byte(all[i].key), all[i].size, 8)
		g.Observe("hgetall", []byte(all[i].key), 2*all[i].size/3, all[i].size*10) // smaller: max wins
	}
	slices.SortFunc(all, func(a, b kv) int {
		if a.size != b.size {
			return int(b.size - a.size)
		}
		return 0
	})
	big := g.BigKeys()
	if len(big) != k {
		t.Fatalf("BigKeys returned %d", len(big))
	}
	for i, e := range big {
		if e.Elements != all[i].size {
			t.Fatalf("rank %d: %s %d, want %s %d", i, e.Key, e.Elements, all[i].key, all[i].size)
		}
	}
	byBytes := g.BigKeysByBytes()
	if byBytes[0].Bytes != all[0].size*10 {
		t.Fatalf("BigKeysByBytes[0] = %+v, want %d bytes", byBytes[0], all[0].size*10)
	}
	g.Observe("del", []byte(big[0].Key), 1, 4)
	if g.BigKeys()[0].Key == big[0].Key {
		t.Fatal("a deleted key is still the biggest")
	}
}

func TestKeyMemoryIsBounded(t *testing.T) {
	g := newGuard(t, Config{TopK: 4})
	long := make([]byte, 1<<20)
	for i := range 10_000 {
		long[0] = byte(i)
		g.Observe("hlen", append(long[:1:1], fmt.Sprint(i)...), int64(i), 1)
		g.Observe("get", long, -1, int64(i))
	}
	for _, e := range append(g.HotKeys(), g.BigKeysByBytes()...) {
		if len(e.Key) > maxStatKey {
			t.Fatalf("kept a %d-byte key", len(e.Key))
		}
	}
	n := 0
	for i := range g.hot.shards {
		n += len(g.hot.shards[i].heap)
	}
	if n > hotShards*g.hot.perShard {
		t.Fatalf("%d hot counters", n)
	}
}

// TestConcurrentUse runs Plan, Decide, Observe and the reports from many
// goroutines (meaningful under -race).
func TestConcurrentUse(t *testing.T) {
	g := newGuard(t, Config{MaxElements: 50, TopK: 8})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([][]byte, 0, 8)
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range 3000 {
				key := fmt.Appendf(nil, "k%d", rng.IntN(100))
				args := [][]byte{[]byte("HGETALL"), key}
				if p := g.Plan(args, dst[:0]); p.Action == Probe {
					g.Decide(args, []int64{int64(i % 100)})
				}
				g.Plan([][]byte{[]byte("DEL"), key}, dst[:0])
				g.Observe("hlen", key, int64(i%100), 8)
				g.Observe("get", key, -1, int64(i))
				if i%500 == 0 {
					g.HotKeys()
					g.BigKeys()
					g.Stats()
				}
			}
		}()
	}
	wg.Wait()
	if len(g.HotKeys()) != 8 || len(g.BigKeys()) != 8 {
		t.Fatalf("HotKeys %d, BigKeys %d", len(g.HotKeys()), len(g.BigKeys()))
	}
}

// TestHotKeysCountEverythingUntilWarm: a quiet proxy's few requests are all
// counted (a test or a low-traffic deployment sees exact counts); after the
// warm-up only sampled observations are.
func TestHotKeysCountEverythingUntilWarm(t *testing.T) {
	g := newGuard(t, Config{TopK: 2})
	g.now = func() int64 { return 0 }
	g.hot.random = func(uint32) uint32 { return 1 } // never picks an observation
	for range hotWarmup {
		g.Observe("get", []byte("k"), -1, 1)
	}
	for range 100 {
		g.Observe("get", []byte("k"), -1, 1)
	}
	hot := g.HotKeys()
	if len(hot) != 1 || math.Abs(hot[0].Rate/hotDecay-hotWarmup) > 1e-6 {
		t.Fatalf("HotKeys = %+v, want a count of %d", hot, hotWarmup)
	}
	g.hot.random = func(uint32) uint32 { return 0 } // picks every observation
	g.Observe("get", []byte("k"), -1, 1)
	if hot := g.HotKeys(); math.Abs(hot[0].Rate/hotDecay-hotWarmup-hotSampleEvery) > 1e-6 {
		t.Fatalf("after one sampled request HotKeys = %+v, want a count of %d", hot, hotWarmup+hotSampleEvery)
	}
}

// TestObserveAtUsesTheGivenTime: the proxy passes the reply's completion
// time instead of the guard reading its clock again.
func TestObserveAtUsesTheGivenTime(t *testing.T) {
	g := newGuard(t, Config{TopK: 2})
	g.now = func() int64 { t.Fatal("ObserveAt read the clock"); return 0 }
	at := g.epoch.Add(5 * time.Second)
	g.ObserveAt(at, "get", []byte("k"), -1, 4096)
	g.ObserveAt(at, "hlen", []byte("h"), 10, 8)
	if hot := g.hot.stats(g, int64(5*time.Second)); len(hot) != 2 || !hot[0].Seen.Equal(at) {
		t.Fatalf("hot keys %+v, want seen at %v", hot, at)
	}
	if big := g.BigKeysByBytes(); len(big) != 2 || !big[0].Seen.Equal(at) {
		t.Fatalf("big keys %+v, want seen at %v", big, at)
	}
}
