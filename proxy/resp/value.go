package resp

import "bytes"

// maxValueDepth bounds the nesting ValueLen follows, as the reply reader does.
const maxValueDepth = 64

// ValueLen returns the length of the first complete RESP2/RESP3 value in b
// (a whole reply: aggregates with all their elements, an attribute with the
// value it annotates). ok is false when b does not start with a whole,
// well-formed value. It is for replies respguard holds in full (a cluster
// fan-out's parts), not for the streaming path.
func ValueLen(b []byte) (n int, ok bool) { return valueLen(b, 0) }

func valueLen(b []byte, depth int) (int, bool) {
	if depth > maxValueDepth || len(b) == 0 {
		return 0, false
	}
	switch b[0] {
	case '+', '-', ':', '_', '#', ',', '(':
		nl := bytes.IndexByte(b, '\n')
		if nl < 1 || b[nl-1] != '\r' {
			return 0, false
		}
		return nl + 1, true
	}
	kind, size, next, ok := ReplyHeader(b)
	if b[0] == '|' { // ReplyHeader leaves attributes to the streaming reader
		kind, size, next, ok = attributeHeader(b)
	}
	if !ok {
		return 0, false
	}
	switch kind {
	case '$', '=', '!':
		if size < 0 {
			return next, true
		}
		end := next + int(size) + 2
		if int64(len(b)-next) < size+2 || b[end-2] != '\r' || b[end-1] != '\n' {
			return 0, false
		}
		return end, true
	case ':':
		return next, true
	}
	elems := size
	switch kind {
	case '%':
		elems = 2 * size
	case '|':
		elems = 2*size + 1 // the attribute's pairs, then the value itself
	}
	pos := next
	for i := int64(0); i < elems; i++ {
		n, ok := valueLen(b[pos:], depth+1)
		if !ok {
			return 0, false
		}
		pos += n
	}
	return pos, true
}

// Elements splits a whole aggregate reply ('*', '~', '>') into its elements'
// bytes; ok is false for anything else (a null array, an error).
func Elements(reply []byte) (elems [][]byte, ok bool) {
	kind, size, next, ok := ReplyHeader(reply)
	if !ok || size < 0 || (kind != '*' && kind != '~' && kind != '>') {
		return nil, false
	}
	elems = make([][]byte, 0, size)
	for pos := next; int64(len(elems)) < size; {
		n, ok := ValueLen(reply[pos:])
		if !ok {
			return nil, false
		}
		elems = append(elems, reply[pos:pos+n])
		pos += n
	}
	return elems, true
}

func attributeHeader(b []byte) (kind byte, n int64, next int, ok bool) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 2 {
		return 0, 0, 0, false
	}
	n, err := headerInt(b[:nl+1])
	if err != nil || n < 0 {
		return 0, 0, 0, false
	}
	return '|', n, nl + 1, true
}
