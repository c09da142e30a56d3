package resp

import "bytes"

// ArrayScanner follows one reply as it streams past in chunks and reports
// where each element of its top-level array starts: the element's index
// and its RESP type byte. It is for a reply respguard passes on without
// holding it whole (EXEC's array), where Elements would need every byte at
// once. A reply that is not an array has no elements. The zero value is
// ready for one reply; an ArrayScanner is used by one goroutine.
type ArrayScanner struct {
	started bool  // the reply's own header line has been read
	left    int64 // elements of the top-level array not yet started
	index   int   // the next element's index
	pending int64 // values still to read in the current element (0: between elements)
	skip    int64 // bulk payload bytes, with their CRLF, still to pass
	inLine  bool  // inside a line whose type byte is kind
	kind    byte
	num     [24]byte // the line's length digits, for the types that carry one
	numLen  int
	bad     bool // malformed: nothing more is reported
}

// Scan reads the reply's next chunk, calling element for each element of
// the top-level array that starts in it, in order.
func (s *ArrayScanner) Scan(p []byte, element func(index int, kind byte)) {
	for len(p) > 0 && !s.bad {
		switch {
		case s.skip > 0:
			n := min(s.skip, int64(len(p)))
			s.skip -= n
			p = p[n:]
		case !s.inLine:
			if s.started && s.left == 0 && s.pending == 0 {
				return // the reply is over
			}
			s.kind, s.inLine, s.numLen = p[0], true, 0
			if s.started && s.pending == 0 {
				element(s.index, s.kind)
				s.index++
				s.left--
				s.pending = 1
			}
			p = p[1:]
		default:
			nl := bytes.IndexByte(p, '\n')
			line := p
			if nl >= 0 {
				line = p[:nl]
			}
			if carriesLength(s.kind) {
				if s.numLen+len(line) > len(s.num) {
					s.bad = true
					return
				}
				s.numLen += copy(s.num[s.numLen:], line)
			}
			if nl < 0 {
				return
			}
			p = p[nl+1:]
			s.inLine = false
			s.endLine()
		}
	}
}

// endLine accounts for the line just read: the values it announces, the
// payload it is followed by.
func (s *ArrayScanner) endLine() {
	var n int64
	if carriesLength(s.kind) {
		var ok bool
		if n, ok = ParseInt(bytes.TrimSuffix(s.num[:s.numLen], []byte{'\r'})); !ok {
			s.bad = true
			return
		}
	}
	if !s.started {
		s.started = true
		if s.kind == '*' || s.kind == '~' || s.kind == '>' {
			s.left = max(n, 0)
		}
		return
	}
	s.pending--
	switch s.kind {
	case '*', '~', '>':
		s.pending += max(n, 0)
	case '%':
		s.pending += 2 * max(n, 0)
	case '|':
		s.pending += 2*max(n, 0) + 1 // the attribute's pairs, then the value they annotate
	case '$', '=', '!':
		if n >= 0 {
			s.skip = n + 2
		}
	}
}

// carriesLength reports whether a line of type kind carries a length.
func carriesLength(kind byte) bool {
	switch kind {
	case '*', '~', '>', '%', '|', '$', '=', '!':
		return true
	}
	return false
}
