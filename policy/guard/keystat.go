package guard

import (
	"sort"
	"time"
)

// KeyStat is one entry of the big-key or hot-key tables.
type KeyStat struct {
	// Key is the key's first maxStatKey bytes; longer keys end in "..."
	// (two long keys with the same prefix share an entry). Bytes that are
	// not UTF-8 show as U+FFFD in JSON.
	Key string `json:"key"`
	// Elements is the largest collection size seen for the key (from HLEN,
	// LLEN, SCARD, ZCARD, XLEN replies and whole-collection reads); 0 if
	// none was seen.
	Elements int64 `json:"elements,omitempty"`
	// Bytes is the largest reply seen for the key, in bytes on the wire.
	Bytes int64 `json:"bytes,omitempty"`
	// Rate (hot keys) is the estimated requests per second, an exponentially
	// decayed average with a 10 s half-life. Counting every request it
	// overestimates by at most RateError; once the sketch samples (after
	// its first 1024 requests it counts 1 in 16, ×16), RateError also
	// covers two standard deviations of the sampling noise, either way.
	Rate      float64 `json:"rate,omitempty"`
	RateError float64 `json:"rate_error,omitempty"`
	// Seen is when the key was last observed.
	Seen time.Time `json:"seen"`
}

// maxStatKey bounds the bytes of a key kept by the big-key and hot-key
// tables, so their memory is bounded whatever the clients send.
const maxStatKey = 256

// statKey returns the bytes of key that the tables keep.
func statKey(key []byte) []byte {
	if len(key) <= maxStatKey {
		return key
	}
	return append(key[:maxStatKey-3:maxStatKey-3], "..."...)
}

// topStats sorts stats by less and keeps the first k.
func topStats(stats []KeyStat, k int, less func(a, b *KeyStat) bool) []KeyStat {
	if stats == nil {
		stats = []KeyStat{} // JSON [] rather than null
	}
	sort.Slice(stats, func(i, j int) bool { return less(&stats[i], &stats[j]) })
	if len(stats) > k {
		stats = stats[:k]
	}
	return stats
}
