package guard

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Unlink modes (Config.Unlink.Mode).
const (
	UnlinkLarge  = "large"  // DEL of a key at or above the thresholds runs as UNLINK (default)
	UnlinkAlways = "always" // every DEL is sent as UNLINK
	UnlinkOff    = "off"    // DEL is forwarded unchanged
)

// Oversize modes (Config.Oversize).
const (
	OversizeReject = "reject" // refuse reads above MaxElements (default)
	OversizeAudit  = "audit"  // forward them, flagged in Plan.Audit for logs and metrics
	OversizeOff    = "off"    // do not look at reads
)

// Defaults applied to zero fields of [Config].
const (
	// DefaultUnlinkMinElements: at 128 elements a hash or sorted set leaves
	// its single-allocation listpack encoding (hash-max-listpack-entries,
	// zset-max-listpack-entries), so each element becomes an allocation that
	// DEL frees synchronously. Measured on redis-server 7.0.15: DEL of a
	// 100-field hash 4 µs, 1000 fields 190 µs, 1M fields 475 ms.
	DefaultUnlinkMinElements = 128
	// DefaultUnlinkMinBytes applies to strings (STRLEN). Redis 7.0 frees
	// strings synchronously even on UNLINK (free effort 1), so above this
	// size UNLINK only makes the deletion visible as such in commandstats.
	DefaultUnlinkMinBytes = 1 << 20
	// DefaultMaxElements is the largest reply (fields, members, elements,
	// entries, keys) a guarded read may produce.
	DefaultMaxElements = 10000
	// DefaultSizeCacheTTL is how long a learned collection size is trusted.
	DefaultSizeCacheTTL = time.Second
	// DefaultTopK is how many big and hot keys are reported.
	DefaultTopK = 50
	// maxTopK bounds TopK: the hot-key sketch keeps 16×TopK counters.
	maxTopK = 10000
)

// Config configures a [Guard]. It is decoded from the "guard." section of the
// respguard configuration; the zero value means every default: DEL of big
// keys becomes UNLINK, reads above 10000 elements are refused, no FLUSH,
// XADD or TTL rules.
type Config struct {
	Unlink UnlinkConfig `mapstructure:"unlink"`
	// FlushAsync sends FLUSHALL and FLUSHDB without a SYNC/ASYNC argument as
	// FLUSHALL ASYNC / FLUSHDB ASYNC.
	FlushAsync bool `mapstructure:"flush_async"`
	// MaxElements is the largest number of elements a guarded read may
	// return or touch; 0 means DefaultMaxElements.
	MaxElements int64 `mapstructure:"max_elements"`
	// Oversize is what happens to a read above MaxElements: "reject"
	// (default, also for ""), "audit" or "off".
	Oversize string `mapstructure:"oversize"`
	// SizeCacheTTL is how long a collection size learned from a reply or a
	// probe is trusted; 0 means DefaultSizeCacheTTL, a negative value
	// disables the cache (every guarded read of a big key probes).
	SizeCacheTTL time.Duration `mapstructure:"size_cache_ttl"`
	// StreamMaxlen caps streams: XADD without MAXLEN/MINID on a key matching
	// Pattern (a Redis glob) gets "MAXLEN ~ Maxlen". The first match wins.
	StreamMaxlen []StreamMaxlen `mapstructure:"stream_maxlen"`
	// RequireTTL lists key globs whose keys must keep an expiry. Writes that
	// certainly leave a matching key without TTL are refused (see
	// requirettl.go for which ones can be known without I/O).
	RequireTTL []string `mapstructure:"require_ttl"`
	// TopK is how many entries BigKeys and HotKeys report; 0 means DefaultTopK.
	TopK int `mapstructure:"top_k"`
}

// UnlinkConfig chooses when DEL is sent as UNLINK.
type UnlinkConfig struct {
	// Mode is "large" (default, also for ""), "always" or "off".
	Mode string `mapstructure:"mode"`
	// MinElements: in mode large, a list, set, hash, sorted set or stream
	// with at least this many elements is unlinked; 0 means
	// DefaultUnlinkMinElements.
	MinElements int64 `mapstructure:"min_elements"`
	// MinBytes: in mode large, a string of at least this many bytes is
	// unlinked; 0 means DefaultUnlinkMinBytes.
	MinBytes int64 `mapstructure:"min_bytes"`
}

// StreamMaxlen is one guard.stream_maxlen rule.
type StreamMaxlen struct {
	Pattern string `mapstructure:"pattern"`
	Maxlen  int64  `mapstructure:"maxlen"`
}

// Validate reports every invalid setting, each naming its key
// ("guard.unlink.mode: ..."). It does not modify c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("guard."+format, a...)) }
	switch c.Unlink.Mode {
	case "", UnlinkLarge, UnlinkAlways, UnlinkOff:
	default:
		bad("unlink.mode: %q is not one of always, large, off", c.Unlink.Mode)
	}
	checkNonNegative(bad, "unlink.min_elements", c.Unlink.MinElements)
	checkNonNegative(bad, "unlink.min_bytes", c.Unlink.MinBytes)
	checkNonNegative(bad, "max_elements", c.MaxElements)
	switch c.Oversize {
	case "", OversizeReject, OversizeAudit, OversizeOff:
	default:
		bad("oversize: %q is not one of reject, audit, off", c.Oversize)
	}
	if c.TopK < 0 || c.TopK > maxTopK {
		bad("top_k: %d is outside 0..%d", c.TopK, maxTopK)
	}
	for i, s := range c.StreamMaxlen {
		checkPattern(bad, fmt.Sprintf("stream_maxlen[%d].pattern", i), s.Pattern)
		if s.Maxlen <= 0 {
			bad("stream_maxlen[%d].maxlen: %d must be positive", i, s.Maxlen)
		}
	}
	for i, p := range c.RequireTTL {
		checkPattern(bad, fmt.Sprintf("require_ttl[%d]", i), p)
	}
	return errors.Join(errs...)
}

func checkNonNegative(bad func(string, ...any), key string, v int64) {
	if v < 0 {
		bad("%s: %d must not be negative", key, v)
	}
}

// checkPattern refuses empty globs, globs that cannot appear in a RESP
// error line, and globs with whitespace: "abc* def*" is more likely two
// patterns written as one than a key with a space in it (which ? matches),
// and taken as one it would match neither abc1 nor def1.
func checkPattern(bad func(string, ...any), key, p string) {
	switch {
	case p == "":
		bad("%s: empty pattern", key)
	case strings.ContainsAny(p, "\r\n"):
		bad("%s: pattern contains CR or LF", key)
	case strings.ContainsFunc(p, unicode.IsSpace):
		bad("%s: pattern %q contains whitespace: write each pattern as its own list item (? matches a space in a key)", key, p)
	}
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Unlink.Mode == "" {
		c.Unlink.Mode = UnlinkLarge
	}
	if c.Unlink.MinElements == 0 {
		c.Unlink.MinElements = DefaultUnlinkMinElements
	}
	if c.Unlink.MinBytes == 0 {
		c.Unlink.MinBytes = DefaultUnlinkMinBytes
	}
	if c.MaxElements == 0 {
		c.MaxElements = DefaultMaxElements
	}
	if c.Oversize == "" {
		c.Oversize = OversizeReject
	}
	if c.SizeCacheTTL == 0 {
		c.SizeCacheTTL = DefaultSizeCacheTTL
	}
	if c.TopK == 0 {
		c.TopK = DefaultTopK
	}
	return c
}
