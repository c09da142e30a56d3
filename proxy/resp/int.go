package resp

// ParseInt parses b as Redis's string2ll does, so that an integer argument
// respguard reads itself is accepted exactly when Redis would accept it: an
// optional '-', then decimal digits without leading zeros ("0" alone, but
// not "-0"), at most 20 bytes, within int64. No '+', no spaces. ok is false
// for anything else; Redis then answers the command's "not an integer or
// out of range" error.
func ParseInt(b []byte) (n int64, ok bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' || v > (1<<64-1)/10 {
			return 0, false
		}
		d := uint64(c - '0')
		if v*10 > 1<<64-1-d {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true // 1<<63 wraps to math.MinInt64, as intended
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
