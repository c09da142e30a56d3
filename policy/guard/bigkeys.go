package guard

import (
	"sync"
	"sync/atomic"
)

// bigKeys keeps the biggest keys seen, by elements and by reply bytes.
type bigKeys struct {
	byElements, byBytes bigTable
}

func newBigKeys(k int) *bigKeys {
	return &bigKeys{byElements: newBigTable(k), byBytes: newBigTable(k)}
}

// bigTable keeps the k keys with the largest value seen. Because each key's
// value is the maximum ever observed for it, the table is exactly the top k
// of those maxima: a key leaves it only when k others are bigger.
type bigTable struct {
	k int
	// floor is the smallest value in the table once it is full (0 before):
	// observations at or below it are dropped without taking mu.
	floor atomic.Int64
	mu    sync.Mutex // guards byKey and the entries
	byKey map[string]*bigEntry
}

type bigEntry struct {
	key             string
	value           int64 // what the table ranks by
	elements, bytes int64
	seen            int64
}

func newBigTable(k int) bigTable {
	return bigTable{k: k, byKey: make(map[string]*bigEntry, k)}
}

// add records an observation of key ranked by value.
func (t *bigTable) add(key []byte, value, elements, bytes, now int64) {
	if value <= t.floor.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byKey[string(key)]; ok {
		e.value, e.elements, e.bytes, e.seen = max(e.value, value), max(e.elements, elements), max(e.bytes, bytes), now
		t.updateFloor()
		return
	}
	if len(t.byKey) >= t.k {
		low := t.lowest()
		if value <= low.value {
			return
		}
		delete(t.byKey, low.key)
	}
	e := &bigEntry{key: string(key), value: value, elements: elements, bytes: bytes, seen: now}
	t.byKey[e.key] = e
	t.updateFloor()
}

// remove forgets key (it was deleted). The caller must not hold t.mu.
func (t *bigTable) remove(key []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byKey[string(key)]; ok {
		delete(t.byKey, string(key))
		t.floor.Store(0)
	}
}

// lowest returns the entry with the smallest value. The caller must hold
// t.mu and the table must not be empty.
func (t *bigTable) lowest() *bigEntry {
	var low *bigEntry
	for _, e := range t.byKey {
		if low == nil || e.value < low.value {
			low = e
		}
	}
	return low
}

// updateFloor recomputes floor. The caller must hold t.mu.
func (t *bigTable) updateFloor() {
	if len(t.byKey) < t.k {
		t.floor.Store(0)
		return
	}
	t.floor.Store(t.lowest().value)
}

// stats returns the entries, unsorted.
func (t *bigTable) stats(g *Guard) []KeyStat {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]KeyStat, 0, len(t.byKey))
	for _, e := range t.byKey {
		out = append(out, KeyStat{Key: e.key, Elements: e.elements, Bytes: e.bytes, Seen: g.wallTime(e.seen)})
	}
	return out
}

// BigKeys returns the keys with the most elements seen in replies (HLEN,
// LLEN, SCARD, ZCARD, XLEN, HGETALL, HKEYS, HVALS, SMEMBERS), largest first,
// at most TopK. A key stays until it is deleted through DEL/UNLINK as a
// first key or pushed out by bigger ones.
func (g *Guard) BigKeys() []KeyStat {
	return topStats(g.big.byElements.stats(g), g.cfg.TopK, func(a, b *KeyStat) bool {
		if a.Elements != b.Elements {
			return a.Elements > b.Elements
		}
		return a.Key < b.Key
	})
}

// BigKeysByBytes returns the keys with the largest replies seen (a GET of a
// big string, an HGETALL of a big hash), largest first, at most TopK.
func (g *Guard) BigKeysByBytes() []KeyStat {
	return topStats(g.big.byBytes.stats(g), g.cfg.TopK, func(a, b *KeyStat) bool {
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Key < b.Key
	})
}
