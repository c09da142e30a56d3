package policy

// Redis 7.0's replies to SORT/SORT_RO patterns from a user without
// unrestricted read access to keys (sortCommandGeneric).
const (
	SortByDeniedText  = "ERR BY option of SORT denied due to insufficient ACL permissions."
	SortGetDeniedText = "ERR GET option of SORT denied due to insufficient ACL permissions."
)

// readsAnyKey mirrors ACLSelectorHasUnrestrictedKeyAccess for reads: allkeys,
// or the literal pattern "*" with read access (~?, %W~* and the like do
// not count).
func (u *User) readsAnyKey() bool {
	if u.allKeys {
		return true
	}
	for _, k := range u.keys {
		if k.pattern == "*" && k.perm&permRead != 0 {
			return true
		}
	}
	return false
}

// sortPatternDenial walks SORT's options in Redis 7.0's order and returns
// the text Redis answers for the first BY pattern (one with '*') or GET
// pattern that u may not use, and the pattern's index; "" when Redis would
// run the command or stop at an earlier syntax error, which it then
// answers itself. Any BY with '*' and any GET, even "GET #", needs
// unrestricted read access.
func sortPatternDenial(u *User, args [][]byte, readonly bool) (string, int) {
	if u.readsAnyKey() {
		return "", 0
	}
	for i := 2; i < len(args); i++ {
		left := len(args) - i - 1
		switch a := args[i]; {
		case equalFold(a, "asc"), equalFold(a, "desc"), equalFold(a, "alpha"):
		case equalFold(a, "limit") && left >= 2:
			if !isLong(args[i+1]) || !isLong(args[i+2]) {
				return "", 0
			}
			i += 2
		case !readonly && equalFold(a, "store") && left >= 1:
			i++
		case equalFold(a, "by") && left >= 1:
			if containsStar(args[i+1]) {
				return SortByDeniedText, i + 1
			}
			i++
		case equalFold(a, "get") && left >= 1:
			return SortGetDeniedText, i + 1
		default:
			return "", 0
		}
	}
	return "", 0
}

// checkSortPatterns denies a SORT whose patterns u may not use.
func (p *Policy) checkSortPatterns(u *User, cmd *command, args [][]byte) (Decision, bool) {
	if cmd.keyProc != procSort && cmd.keyProc != procSortRO {
		return Decision{}, false
	}
	text, i := sortPatternDenial(u, args, cmd.keyProc == procSortRO)
	if text == "" {
		return Decision{}, false
	}
	return Decision{Audit: p.audit, Err: text, Reason: ReasonSortPattern, Key: string(args[i])}, true
}

func containsStar(b []byte) bool {
	for _, c := range b {
		if c == '*' {
			return true
		}
	}
	return false
}

// isLong reports whether Redis's string2ll accepts b: an optional '-',
// decimal digits without leading zeros (so "0" but not "-0"), within int64.
func isLong(b []byte) bool {
	digits := b
	if len(b) > 0 && b[0] == '-' {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || digits[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	if len(digits) < 19 {
		return true
	}
	limit := "9223372036854775807"
	if len(b) > len(digits) {
		limit = "9223372036854775808"
	}
	return string(digits) <= limit
}
