package resp

import "bytes"

// splitInline splits an inline command line into arguments the way Redis's
// sdssplitargs does: spaces separate, "double quotes" take \n \r \t \b \a \\
// \" and \xHH escapes, 'single quotes' take \' only, and a closing quote must
// be followed by a space or the end of the line. The returned slices point
// into rr's scratch buffer.
func (rr *RequestReader) splitInline(line []byte) ([][]byte, error) {
	// sdssplitargs sees a C string: a NUL ends the line. (It also ended the
	// token loop below without advancing, which spun forever.)
	if nul := bytes.IndexByte(line, 0); nul >= 0 {
		line = line[:nul]
	}
	rr.inline = rr.inline[:0]
	rr.inlineAt = rr.inlineAt[:0]
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			break
		}
		start := len(rr.inline)
		next, err := rr.inlineToken(line, p)
		if err != nil {
			return nil, err
		}
		p = next
		rr.inlineAt = append(rr.inlineAt, span{off: start, len: len(rr.inline) - start})
	}
	rr.args = rr.args[:0]
	for _, s := range rr.inlineAt {
		rr.args = append(rr.args, rr.inline[s.off:s.off+s.len:s.off+s.len])
	}
	return rr.args, nil
}

// inlineToken appends one unescaped token starting at line[p] to rr.inline
// and returns the index just past it.
func (rr *RequestReader) inlineToken(line []byte, p int) (int, error) {
	inDouble, inSingle := false, false
	for ; ; p++ {
		switch {
		case inDouble:
			if p >= len(line) {
				return 0, protoErr("unbalanced quotes in request")
			}
			c := line[p]
			switch {
			case c == '\\' && p+3 < len(line) && line[p+1] == 'x' && isHex(line[p+2]) && isHex(line[p+3]):
				rr.inline = append(rr.inline, hexVal(line[p+2])<<4|hexVal(line[p+3]))
				p += 3
			case c == '\\' && p+1 < len(line):
				p++
				rr.inline = append(rr.inline, unescape(line[p]))
			case c == '"':
				if p+1 < len(line) && !isSpace(line[p+1]) {
					return 0, protoErr("unbalanced quotes in request")
				}
				return p + 1, nil
			default:
				rr.inline = append(rr.inline, c)
			}
		case inSingle:
			if p >= len(line) {
				return 0, protoErr("unbalanced quotes in request")
			}
			c := line[p]
			switch {
			case c == '\\' && p+1 < len(line) && line[p+1] == '\'':
				p++
				rr.inline = append(rr.inline, '\'')
			case c == '\'':
				if p+1 < len(line) && !isSpace(line[p+1]) {
					return 0, protoErr("unbalanced quotes in request")
				}
				return p + 1, nil
			default:
				rr.inline = append(rr.inline, c)
			}
		default:
			if p >= len(line) {
				return p, nil
			}
			switch c := line[p]; c {
			case ' ', '\n', '\r', '\t', 0:
				return p, nil
			case '"':
				inDouble = true
			case '\'':
				inSingle = true
			default:
				rr.inline = append(rr.inline, c)
			}
		}
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	default:
		return c
	}
}
