package guard

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/respguard/respguard/policy"
)

// matchKey reports whether key matches the Redis glob pattern. The string
// view of key does not outlive the call (policy.Match keeps nothing), so it
// does not copy.
func matchKey(pattern string, key []byte) bool {
	return policy.Match(pattern, unsafe.String(unsafe.SliceData(key), len(key)))
}

// planXadd adds MAXLEN ~ N right after the key of an XADD on a key matching
// a stream_maxlen pattern that trims nothing itself. Redis parses XADD's
// options in any order up to the ID, so the insertion keeps the command's
// meaning: XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] n [LIMIT c]] id f v ...
func (g *Guard) planXadd(args, dst [][]byte) Plan {
	if xaddTrims(args) {
		return Plan{}
	}
	for i, rule := range g.cfg.StreamMaxlen {
		if matchKey(rule.Pattern, args[1]) {
			g.stats.streamMaxlen.Add(1)
			dst = append(dst[:0], args[0], args[1], argMaxlen, argTilde, g.maxlenArgs[i])
			return Plan{Action: Rewrite, Args: append(dst, args[2:]...), Reason: ReasonStreamMaxlen}
		}
	}
	return Plan{}
}

// xaddTrims reports whether XADD's options (before the ID) include MAXLEN or
// MINID.
func xaddTrims(args [][]byte) bool {
	for i := 2; i < len(args); i++ {
		switch {
		case equalFold(args[i], "maxlen"), equalFold(args[i], "minid"):
			return true
		case equalFold(args[i], "nomkstream"):
		case equalFold(args[i], "limit"):
			i++
		default:
			return false // the ID: options end here
		}
	}
	return false
}

// planRequireTTL refuses writes that certainly leave a key matching a
// require_ttl pattern without an expiry. Without I/O that is knowable for:
//
//   - SET without EX, PX, EXAT, PXAT or KEEPTTL (SET clears the TTL; KEEPTTL
//     is taken as the client's statement that the key has one);
//   - SETNX, GETSET, MSET, MSETNX (no way to give a TTL; SETNX creates a
//     persistent key, the others clear the TTL);
//   - PERSIST, GETEX ... PERSIST, RESTORE key 0 (without ABSTTL a 0 TTL is
//     none).
//
// Collection writes (HSET, SADD, LPUSH, ZADD, XADD, INCR, APPEND, ...) keep
// an existing TTL and create a key without one; whether the key exists is
// I/O, and refusing them would break the usual "HSET then EXPIRE" pipeline,
// so they are not checked.
func (g *Guard) planRequireTTL(k kind, args [][]byte) Plan {
	switch k {
	case kindSet:
		if setHasTTL(args) {
			return Plan{}
		}
		return g.requireTTL(args, 1, "add EX, PX, EXAT or PXAT")
	case kindNoTTL1:
		return g.requireTTL(args, 1, noTTLAdvice(args[0]))
	case kindMset:
		for i := 1; i < len(args); i += 2 {
			if p := g.requireTTL(args, i, "use SET key value EX seconds for each key"); p.Action == Reject {
				return p
			}
		}
	case kindGetex:
		if hasWord(args[2:], "persist") {
			return g.requireTTL(args, 1, "keep the expiry: drop PERSIST")
		}
	case kindRestore:
		if string(args[2]) == "0" {
			return g.requireTTL(args, 1, "give RESTORE a TTL")
		}
	}
	return Plan{}
}

// requireTTL refuses args when the key at args[i] matches a pattern.
func (g *Guard) requireTTL(args [][]byte, i int, advice string) Plan {
	for _, p := range g.cfg.RequireTTL {
		if matchKey(p, args[i]) {
			g.stats.requireTTL.Add(1)
			err := fmt.Sprintf("ERR respguard: %s on %s would leave the key without a TTL (guard.require_ttl %s); %s",
				upper(args[0]), quoteKey(args[i]), p, advice)
			return Plan{Action: Reject, Err: err, Reason: ReasonRequireTTL}
		}
	}
	return Plan{}
}

func noTTLAdvice(name []byte) string {
	switch {
	case equalFold(name, "setnx"):
		return "use SET key value NX EX seconds"
	case equalFold(name, "getset"):
		return "use SET key value GET EX seconds"
	}
	return "keys matching it must keep their expiry"
}

// setHasTTL reports whether SET's options give or keep an expiry.
func setHasTTL(args [][]byte) bool {
	for _, a := range args[3:] {
		if equalFold(a, "ex") || equalFold(a, "px") || equalFold(a, "exat") ||
			equalFold(a, "pxat") || equalFold(a, "keepttl") {
			return true
		}
	}
	return false
}

func hasWord(args [][]byte, word string) bool {
	for _, a := range args {
		if equalFold(a, word) {
			return true
		}
	}
	return false
}

// equalFold reports whether b equals the lower-case ASCII word, ignoring case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// upper returns the command name in upper case for messages.
func upper(name []byte) string { return string(bytes.ToUpper(name)) }

// maxQuotedKey bounds the bytes of a key shown in an error line.
const maxQuotedKey = 64

// quoteKey renders key for an error line: single-quoted, printable ASCII as
// is, other bytes (CR, LF, quotes, UTF-8) as \xNN, cut after maxQuotedKey
// bytes with "...".
func quoteKey(key []byte) string {
	b := make([]byte, 0, len(key)+2)
	b = append(b, '\'')
	for i, c := range key {
		if i == maxQuotedKey {
			b = append(b, "..."...)
			break
		}
		if c < 0x20 || c >= 0x7f || c == '\'' || c == '\\' {
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return string(append(b, '\''))
}
