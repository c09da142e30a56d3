package policy

// keyRange is a run of key argument indexes first, first+step, ... <= last,
// all with the same flags.
type keyRange struct {
	first, last, step int
	flags             KeyFlags
}

// keyProc selects Redis's native getkeys function for commands whose key
// specs are incomplete or have variable flags.
type keyProc uint8

const (
	procSpecs keyProc = iota
	procSort
	procSortRO
	procMigrate
	procSet
	procBitfield
)

func keyProcFor(name string) keyProc {
	switch name {
	case "sort":
		return procSort
	case "sort_ro":
		return procSortRO
	case "migrate":
		return procMigrate
	case "set":
		return procSet
	case "bitfield":
		return procBitfield
	}
	return procSpecs
}

// maxInlineRanges is how many key ranges Check finds without allocating.
const maxInlineRanges = 8

// Keys appends to dst the indexes in args of the key arguments of the command
// args runs, found as Redis 7.0 finds them for ACL checks. args[0] is the
// command name. It returns dst unchanged for unknown commands or arguments
// the key specs cannot parse. It allocates only when dst lacks capacity.
func (c *Commands) Keys(args [][]byte, dst []int) []int {
	cmd := c.lookup(args)
	if cmd == nil {
		return dst
	}
	var buf [maxInlineRanges]keyRange
	for _, r := range cmd.keyRanges(args, buf[:0]) {
		for i := r.first; i <= r.last && i < len(args); i += r.step {
			dst = append(dst, i)
		}
	}
	return dst
}

// keyRanges appends the command's key ranges for args to dst.
func (cmd *command) keyRanges(args [][]byte, dst []keyRange) []keyRange {
	switch cmd.keyProc {
	case procSort:
		return sortKeys(args, dst)
	case procSortRO:
		return append(dst, keyRange{1, 1, 1, KeyRO | KeyAccess})
	case procMigrate:
		return migrateKeys(args, dst)
	case procSet:
		return setKeys(args, dst)
	case procBitfield:
		return bitfieldKeys(args, dst)
	}
	n := len(dst)
	for i := range cmd.info.KeySpecs {
		var ok bool
		if dst, ok = specRange(&cmd.info.KeySpecs[i], args, dst); !ok {
			return dst[:n] // like Redis: an invalid spec means no keys at all
		}
	}
	return dst
}

// specRange mirrors getKeysUsingKeySpecs for one spec: it appends the spec's
// range (if its keyword is present) and reports false for an invalid or
// incomplete spec.
func specRange(spec *KeySpec, args [][]byte, dst []keyRange) ([]keyRange, bool) {
	if spec.Flags&KeyNotKey != 0 {
		return dst, true
	}
	first, ok := specFirst(&spec.BeginSearch, args)
	if !ok {
		return dst, false
	}
	if first == 0 {
		return dst, true // keyword not found: skipped, incomplete or not
	}
	argc := len(args)
	var last, step int
	switch fk := &spec.FindKeys; fk.Type {
	case FindRange:
		step = fk.KeyStep
		switch {
		case fk.LastKey >= 0:
			last = first + fk.LastKey
		case fk.Limit == 0:
			last = argc + fk.LastKey
		default:
			last = first + ((argc-first)/fk.Limit + fk.LastKey)
		}
	case FindKeynum:
		step = fk.KeyStep
		if first+fk.KeyNumIdx >= argc {
			return dst, false
		}
		n, ok := parseCount(args[first+fk.KeyNumIdx])
		if !ok {
			return dst, false
		}
		first += fk.FirstKey
		last = first + n - 1
	default:
		return dst, false
	}
	if last >= argc || last < first || first >= argc || step <= 0 {
		return dst, false
	}
	dst = append(dst, keyRange{first, last, step, spec.Flags})
	return dst, spec.Flags&KeyIncomplete == 0
}

// specFirst finds the first key index; 0 means the keyword was not found.
func specFirst(bs *BeginSearch, args [][]byte) (int, bool) {
	switch bs.Type {
	case SearchIndex:
		return bs.Index, true
	case SearchKeyword:
		argc := len(args)
		start, end := bs.StartFrom, argc-1
		if start <= 0 {
			start, end = argc+bs.StartFrom, 1
		}
		for i := start; i != end; {
			if i >= argc || i < 1 {
				break
			}
			if equalFold(args[i], bs.Keyword) {
				return i + 1, true
			}
			if start <= end {
				i++
			} else {
				i--
			}
		}
		return 0, true
	}
	return 0, false
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// sortKeys mirrors sortGetKeys: the sorted key, and the last STORE target.
func sortKeys(args [][]byte, dst []keyRange) []keyRange {
	dst = append(dst, keyRange{1, 1, 1, KeyRO | KeyAccess})
	store := 0
	for i := 2; i < len(args); i++ {
		switch {
		case equalFold(args[i], "limit"):
			i += 2
		case equalFold(args[i], "get"), equalFold(args[i], "by"):
			i++
		case equalFold(args[i], "store") && i+1 < len(args):
			store = i + 1
		}
	}
	if store > 0 {
		dst = append(dst, keyRange{store, store, 1, KeyOW | KeyUpdate})
	}
	return dst
}

// migrateKeys mirrors migrateGetKeys: the key at 3, or the keys after KEYS.
func migrateKeys(args [][]byte, dst []keyRange) []keyRange {
	first, num := 3, 1
	for i := 6; i < len(args); i++ {
		if equalFold(args[i], "keys") {
			if len(args[3]) > 0 {
				return dst
			}
			first, num = i+1, len(args)-i-1
			break
		}
		switch {
		case equalFold(args[i], "auth"):
			i++
		case equalFold(args[i], "auth2"):
			i += 2
		}
	}
	if num == 0 || first >= len(args) {
		return dst
	}
	return append(dst, keyRange{first, first + num - 1, 1, KeyRW | KeyAccess | KeyDelete})
}

// setKeys mirrors setGetKeys: SET reads the key only with the GET option.
func setKeys(args [][]byte, dst []keyRange) []keyRange {
	for _, arg := range args[min(3, len(args)):] {
		if equalFold(arg, "get") {
			return append(dst, keyRange{1, 1, 1, KeyRW | KeyAccess | KeyUpdate})
		}
	}
	return append(dst, keyRange{1, 1, 1, KeyOW | KeyUpdate})
}

// bitfieldKeys mirrors bitfieldGetKeys: read-only when only GET and OVERFLOW.
func bitfieldKeys(args [][]byte, dst []keyRange) []keyRange {
	readonly := true
	for i := 2; i < len(args) && readonly; i++ {
		remaining := len(args) - i - 1
		switch {
		case equalFold(args[i], "get") && remaining >= 2:
			i += 2
		case equalFold(args[i], "overflow") && remaining >= 1:
			i++
		default: // SET, INCRBY or a syntax error: assume a write
			readonly = false
		}
	}
	if readonly {
		return append(dst, keyRange{1, 1, 1, KeyRO | KeyAccess})
	}
	return append(dst, keyRange{1, 1, 1, KeyRW | KeyAccess | KeyUpdate})
}

// parseCount parses a non-negative decimal the way Redis's string2ll
// accepts it (no sign, no leading zeros), capped to keep sums in range.
func parseCount(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
