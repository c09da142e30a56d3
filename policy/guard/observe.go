package guard

import "time"

// Observe learns from a completed reply. name is the command's lower-case
// name, key its first key (nil for keyless commands), elements the reply's
// size: an aggregate's top-level element count with a RESP3 map's keys and
// values counted separately (%N counts 2N, so RESP2 and RESP3 agree), or an
// integer reply's value, or -1 for anything else (errors, bulk strings,
// nil). bytes is the reply's size on the wire. Observe copies what it keeps.
//
// Every observation with a key is a request for the hot-key sketch, which
// counts a random sample of them once warmed up (see hotKeys).
// Whole-collection replies (HGETALL, HKEYS, HVALS, SMEMBERS) and size
// replies (HLEN, LLEN, SCARD, ZCARD, XLEN) feed the size cache and the
// big-key table by elements; every reply feeds the table by bytes. DEL and
// UNLINK forget their first key.
func (g *Guard) Observe(name string, key []byte, elements int64, bytes int64) {
	g.observe(name, key, elements, bytes, -1)
}

// ObserveAt is Observe for a reply completed at t (a time.Now reading, or
// a time derived from one by adding durations), for a caller that has read
// the clock already.
func (g *Guard) ObserveAt(t time.Time, name string, key []byte, elements int64, bytes int64) {
	g.observe(name, key, elements, bytes, max(int64(t.Sub(g.epoch)), 0))
}

// observe implements Observe; now < 0 means read the guard's clock, only
// if something is kept.
func (g *Guard) observe(name string, key []byte, elements, bytes, now int64) {
	if key == nil {
		return
	}
	if w := g.hot.sample(); w > 0 {
		if now < 0 {
			now = g.now()
		}
		g.hot.add(key, now, w)
	}
	if name == "del" || name == "unlink" {
		g.sizes.forget(key)
		g.big.byElements.remove(statKey(key))
		g.big.byBytes.remove(statKey(key))
		return
	}
	size := replySize(name, elements)
	if size < 0 && bytes <= g.big.byBytes.floor.Load() {
		return // the common case once the table is full: nothing to keep
	}
	if now < 0 {
		now = g.now()
	}
	if size >= 0 {
		g.learnSize(key, size, bytes, now)
	}
	if bytes > 0 {
		g.big.byBytes.add(statKey(key), bytes, max(size, 0), bytes, now)
	}
}

// learnSize records a key's collection size, however it was learned (a
// reply, or a probe before a read that may then be refused): the size cache
// and the big-key table by elements. bytes is the reply's size, 0 if none.
func (g *Guard) learnSize(key []byte, size, bytes, now int64) {
	g.sizes.put(key, size, now)
	g.big.byElements.add(statKey(key), size, size, bytes, now)
}

// replySize is the collection size a reply to name reveals, or -1.
func replySize(name string, elements int64) int64 {
	if elements < 0 {
		return -1
	}
	switch name {
	case "hgetall":
		return elements / 2
	case "hkeys", "hvals", "smembers", "hlen", "llen", "scard", "zcard", "xlen":
		return elements
	}
	return -1
}

// wallTime converts a time on the guard's clock to wall time.
func (g *Guard) wallTime(t int64) time.Time { return g.epoch.Add(time.Duration(t)) }
