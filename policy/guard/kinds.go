package guard

// kind is what the guard does with one command name.
type kind uint8

const (
	kindDel kind = iota
	kindFlush
	kindXadd
	kindSet     // SET without EX/PX/EXAT/PXAT/KEEPTTL
	kindNoTTL1  // SETNX, GETSET, PERSIST: the key at 1 ends without TTL
	kindMset    // MSET, MSETNX: every key at 1, 3, 5, ...
	kindGetex   // GETEX key PERSIST
	kindRestore // RESTORE key 0 ...
	kindRead    // kindRead+i is readOps[i]
)

// maxGuardedName is the longest guarded command name ("zrevrangebyscore").
const maxGuardedName = 16

// enabledKinds maps the lower-case names of the commands cfg asks the guard
// to look at; every other command is passed without a lookup.
func enabledKinds(cfg *Config) map[string]kind {
	m := map[string]kind{}
	if cfg.Unlink.Mode != UnlinkOff {
		m["del"] = kindDel
	}
	if cfg.FlushAsync {
		m["flushall"], m["flushdb"] = kindFlush, kindFlush
	}
	if len(cfg.StreamMaxlen) > 0 {
		m["xadd"] = kindXadd
	}
	if len(cfg.RequireTTL) > 0 {
		m["set"] = kindSet
		m["setnx"], m["getset"], m["persist"] = kindNoTTL1, kindNoTTL1, kindNoTTL1
		m["mset"], m["msetnx"] = kindMset, kindMset
		m["getex"] = kindGetex
		m["restore"] = kindRestore
	}
	if cfg.Oversize != OversizeOff {
		for i, op := range readOps {
			m[op.lower] = kindRead + kind(i)
		}
	}
	return m
}

// nameFilter answers "could this be a guarded name?" from the name's length
// and first letter alone: bit c-'a' of byLen[n] is set when a guarded name
// of length n starts with letter c. The zero value matches nothing.
type nameFilter struct {
	byLen [maxGuardedName + 1]uint32
}

func (f *nameFilter) add(lower string) {
	f.byLen[len(lower)] |= 1 << (lower[0] - 'a')
}

// mayMatch is false for most unguarded names (GET, SET, HSET, ...), in a
// couple of nanoseconds.
func (f *nameFilter) mayMatch(name []byte) bool {
	if len(name) == 0 || len(name) > maxGuardedName {
		return false
	}
	letter := (name[0] | 0x20) - 'a'
	return letter < 26 && f.byLen[len(name)]&(1<<letter) != 0
}
