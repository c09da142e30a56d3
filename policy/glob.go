package policy

// Match reports whether s matches the Redis glob pattern, exactly as Redis's
// stringmatchlen (case-sensitive) does: '*', '?', '[abc]', '[^a]', '[a-z]'
// and '\' escapes. It does not allocate.
func Match(pattern, s string) bool { return match(pattern, s) }

// match is Match for keys and channels given as string or []byte.
func match[S string | []byte](pattern string, s S) bool {
	skipLonger := false
	return matchFrom(pattern, 0, s, 0, &skipLonger, 0)
}

// at returns p[i], or 0 past the end: Redis patterns are NUL-terminated and
// stringmatchlen reads that terminator in a few places.
func at(p string, i int) byte {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// matchFrom is stringmatchlen_impl over pattern[pi:] and s[si:]. It keeps the
// C code's shape (including its signed-char range comparisons) so that every
// edge case answers as Redis does.
func matchFrom[S string | []byte](pattern string, pi int, s S, si int, skipLonger *bool, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	for pi < len(pattern) && si < len(s) {
		switch pattern[pi] {
		case '*':
			for pi < len(pattern) && at(pattern, pi+1) == '*' {
				pi++
			}
			if len(pattern)-pi == 1 {
				return true
			}
			for si < len(s) {
				if matchFrom(pattern, pi+1, s, si, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				si++
			}
			*skipLonger = true
			return false
		case '?':
			si++
		case '[':
			var ok bool
			if pi, ok = matchClass(pattern, pi+1, s[si]); !ok {
				return false
			}
			si++
		case '\\':
			if len(pattern)-pi >= 2 {
				pi++
			}
			fallthrough
		default:
			if pattern[pi] != s[si] {
				return false
			}
			si++
		}
		pi++
		if si == len(s) {
			for at(pattern, pi) == '*' {
				pi++
			}
			break
		}
	}
	return pi >= len(pattern) && si == len(s)
}

// matchClass matches c against the class starting at pattern[pi] (just after
// '['). It returns the index of the closing ']' (or of the last pattern byte
// when unterminated) and whether c matched.
func matchClass(pattern string, pi int, c byte) (int, bool) {
	not := at(pattern, pi) == '^'
	if not {
		pi++
	}
	match := false
	for {
		rest := len(pattern) - pi
		switch {
		case at(pattern, pi) == '\\' && rest >= 2:
			pi++
			match = match || pattern[pi] == c
		case at(pattern, pi) == ']':
			return pi, match != not
		case rest <= 0:
			return pi - 1, match != not
		case rest >= 3 && pattern[pi+1] == '-':
			lo, hi, v := signed(pattern[pi]), signed(pattern[pi+2]), signed(c)
			if lo > hi {
				lo, hi = hi, lo
			}
			pi += 2
			match = match || (lo <= v && v <= hi)
		default:
			match = match || pattern[pi] == c
		}
		pi++
	}
}

// signed converts like C's (int) of a signed char on x86.
func signed(b byte) int { return int(int8(b)) }
