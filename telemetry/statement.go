package telemetry

import (
	"bytes"
	"slices"
	"strconv"
)

// Bounds on formatted statements, so a huge MSET or a megabyte value cannot
// blow up a span or the slow log.
const (
	maxStatementArgLen = 128  // bytes of one argument before "..."
	maxStatementLen    = 1024 // bytes of the whole statement before "..."
)

// FormatStatement appends to dst the text of the command args for
// db.query.text and the slow log, and returns the extended slice.
// args[0] is the command name (written upper-case); keyIndexes lists the
// positions in args that hold key names (any order; out-of-range entries are
// ignored). Modes:
//
//	StatementKeys (and ""): "SET user:1 ?"  (keys kept, other arguments "?")
//	StatementFull:          "SET user:1 alice"
//	StatementNone:          "SET"
//
// Arguments that are not plain printable ASCII without spaces are written as
// Go-quoted strings, so the result is always valid UTF-8. Each argument is
// cut at 128 bytes and the statement at about 1 KiB, marked by "...".
// FormatStatement does not retain args or keyIndexes; it allocates only when
// dst lacks capacity.
func FormatStatement(dst []byte, mode StatementMode, args [][]byte, keyIndexes []int) []byte {
	if len(args) == 0 {
		return dst
	}
	start := len(dst)
	dst = appendUpper(dst, args[0])
	if mode == StatementNone {
		return dst
	}
	if mode == StatementFull && carriesSecrets(args) {
		mode = StatementKeys // as Redis's SLOWLOG does, never record credentials
	}
	for i := 1; i < len(args); i++ {
		if len(dst)-start >= maxStatementLen {
			return append(dst, " ..."...)
		}
		dst = append(dst, ' ')
		if mode == StatementFull || slices.Contains(keyIndexes, i) {
			dst = appendArg(dst, args[i])
		} else {
			dst = append(dst, '?')
		}
	}
	return dst
}

func appendUpper(dst, name []byte) []byte {
	for _, b := range name {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// appendArg writes arg verbatim when it is short printable ASCII without
// spaces or quotes, and Go-quoted otherwise; long args are cut.
func appendArg(dst, arg []byte) []byte {
	cut := len(arg) > maxStatementArgLen
	if cut {
		arg = arg[:maxStatementArgLen]
	}
	if isPlain(arg) {
		dst = append(dst, arg...)
	} else {
		dst = strconv.AppendQuote(dst, string(arg))
	}
	if cut {
		dst = append(dst, "..."...)
	}
	return dst
}

func isPlain(arg []byte) bool {
	if len(arg) == 0 {
		return false
	}
	for _, b := range arg {
		if b <= ' ' || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// carriesSecrets reports commands whose arguments may hold passwords: AUTH,
// HELLO ... AUTH, ACL SETUSER, CONFIG SET (requirepass, masterauth...),
// MIGRATE ... AUTH. In full mode their arguments are redacted anyway.
func carriesSecrets(args [][]byte) bool {
	switch {
	case equalFoldASCII(args[0], "auth"), equalFoldASCII(args[0], "hello"), equalFoldASCII(args[0], "migrate"):
		return true
	case len(args) > 1 && equalFoldASCII(args[0], "acl"):
		return true
	case len(args) > 1 && equalFoldASCII(args[0], "config"):
		return equalFoldASCII(args[1], "set")
	}
	return false
}

func equalFoldASCII(b []byte, s string) bool { return bytes.EqualFold(b, []byte(s)) }
