package resp

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	tidwall "github.com/tidwall/resp"
)

// fuzzLimits keep each input cheap while still reaching every limit check.
var fuzzLimits = Limits{MaxBulkLen: 1 << 16, MaxMultibulkLen: 1 << 10, MaxInlineSize: 256, MaxQueryBuffer: 1 << 17}

func FuzzRequestReader(f *testing.F) {
	for _, c := range multibulkCases {
		f.Add([]byte(c.in))
	}
	for _, c := range inlineCases {
		f.Add([]byte(c.in))
	}
	for _, c := range protocolErrorCases {
		if len(c.in) < 1000 {
			f.Add([]byte(c.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same bytes split any way parse the same.
		want := parseAll(bytes.NewReader(data), fuzzLimits)
		for _, s := range splitters[1:] {
			if got := parseAll(s.wrap(bytes.NewReader(data)), fuzzLimits); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s:\n got %v\nwant %v", s.name, got, want)
			}
		}
		// Each multibulk command's Raw re-parses to the same arguments.
		for i, r := range want.raws {
			if r == "<inline>" {
				continue
			}
			again := parseAll(strings.NewReader(r), fuzzLimits)
			if len(again.cmds) != 1 || !reflect.DeepEqual(again.cmds[0], want.cmds[i]) {
				t.Fatalf("Raw %q re-parses as %v, not %q", r, again, want.cmds[i])
			}
		}
		differentialTidwall(t, data)
	})
}

// differentialTidwall compares the first command of data with what
// tidwall/resp's ReadMultiBulk makes of it, when data starts with a
// canonically encoded multibulk command (what clients send). On such input
// the two parsers must agree byte for byte.
func differentialTidwall(t *testing.T, data []byte) {
	if len(data) == 0 || data[0] != '*' {
		return
	}
	v, telnet, n, err := tidwall.NewReader(bytes.NewReader(data)).ReadMultiBulk()
	theirs, ok := canonicalArgs(v, telnet, err)
	if ok && string(AppendCommand(nil, theirs...)) != string(data[:n]) {
		ok = false // non-canonical: "+1", "01", ... which Redis and we refuse
	}
	rr := NewRequestReader(bytes.NewReader(data), fuzzLimits)
	c, ourErr := rr.ReadCommand()
	oursCanonical := ourErr == nil && c.Raw != nil && bytes.HasPrefix(data, c.Raw) &&
		bytes.Equal(AppendCommand(nil, c.Args...), c.Raw)
	switch {
	case ok && len(theirs) > 0:
		if ourErr != nil || !reflect.DeepEqual(c.Args, theirs) || len(c.Raw) != n {
			t.Fatalf("tidwall read %q (%d bytes); we read %q (%d bytes), %v", theirs, n, c.Args, len(c.Raw), ourErr)
		}
	case oursCanonical && bytes.Equal(c.Raw, data[:len(c.Raw)]) && len(c.Args) <= 1<<10:
		if err == nil {
			t.Fatalf("we read canonical %q; tidwall read %v (telnet %v)", c.Args, v, telnet)
		}
		t.Fatalf("we read canonical %q; tidwall failed: %v", c.Args, err)
	}
}

// canonicalArgs returns the arguments of a non-empty multibulk of bulks.
func canonicalArgs(v tidwall.Value, telnet bool, err error) ([][]byte, bool) {
	if err != nil || telnet || v.Type() != tidwall.Array || v.IsNull() {
		return nil, false
	}
	var out [][]byte
	for _, e := range v.Array() {
		if e.Type() != tidwall.BulkString || e.IsNull() {
			return nil, false
		}
		out = append(out, e.Bytes())
	}
	return out, len(out) > 0
}

func FuzzRequestReaderRoundTrip(f *testing.F) {
	f.Add([]byte("SET\x00key\x00value"), uint8(3))
	f.Add([]byte("\x00\x00"), uint8(1))
	f.Add([]byte("a\r\nb\x00\r\n"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		// Any arguments encoded by AppendCommand parse back to themselves.
		argv := bytes.Split(data, []byte{0})
		enc := AppendCommand(nil, argv...)
		enc = append(enc, enc...)
		rd := io.Reader(bytes.NewReader(enc))
		if chunk > 0 {
			rd = chunkReader{rd, int(chunk)}
		}
		rr := NewRequestReader(rd, Limits{})
		for range 2 {
			c, err := rr.ReadCommand()
			if err != nil || !reflect.DeepEqual(c.Args, argv) || !bytes.Equal(c.Raw, enc[:len(enc)/2]) {
				t.Fatalf("args %q: got %q, %v", argv, c.Args, err)
			}
		}
	})
}

func FuzzInline(f *testing.F) {
	for _, c := range inlineCases {
		f.Add(strings.TrimRight(c.in, "\r\n"))
	}
	for _, s := range []string{`"\x4`, `"\`, `'\`, `a"b"c`, "\"a\"\vb", `''''`, `"\\"`, "\x00", "a\x00\"", `"a`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") {
			return // one line per input
		}
		got := parseAll(strings.NewReader(line+"\r\n"), Limits{})
		want, ok := sdssplitargs(line)
		switch {
		case strings.HasPrefix(line, "*"):
			return // a multibulk header, not an inline command
		case !ok:
			if got.err != "ERR Protocol error: unbalanced quotes in request" {
				t.Fatalf("sdssplitargs fails on %q; we got %v", line, got)
			}
		case len(want) == 0:
			if len(got.cmds) != 0 || got.err != "EOF" {
				t.Fatalf("%q is empty; we got %v", line, got)
			}
		default:
			if len(got.cmds) != 1 || !reflect.DeepEqual(got.cmds[0], want) {
				t.Fatalf("sdssplitargs(%q) = %q; we got %v", line, want, got)
			}
		}
	})
}

// sdssplitargs is a line-by-line port of Redis 7.0's sds.c sdssplitargs,
// reading line as the NUL-terminated C string it is in Redis.
func sdssplitargs(line string) ([]string, bool) {
	at := func(i int) byte {
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	isspace := func(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
	var vector []string
	p := 0
	for {
		for at(p) != 0 && isspace(at(p)) {
			p++
		}
		if at(p) == 0 {
			return vector, true
		}
		inq, insq, done := false, false, false
		var current []byte
		for !done {
			switch {
			case inq:
				if at(p) == '\\' && at(p+1) == 'x' && isHexDigit(at(p+2)) && isHexDigit(at(p+3)) {
					current = append(current, hexVal(at(p+2))*16+hexVal(at(p+3)))
					p += 3
				} else if at(p) == '\\' && at(p+1) != 0 {
					p++
					current = append(current, unescape(at(p)))
				} else if at(p) == '"' {
					if at(p+1) != 0 && !isspace(at(p+1)) {
						return nil, false
					}
					done = true
				} else if at(p) == 0 {
					return nil, false
				} else {
					current = append(current, at(p))
				}
			case insq:
				if at(p) == '\\' && at(p+1) == '\'' {
					p++
					current = append(current, '\'')
				} else if at(p) == '\'' {
					if at(p+1) != 0 && !isspace(at(p+1)) {
						return nil, false
					}
					done = true
				} else if at(p) == 0 {
					return nil, false
				} else {
					current = append(current, at(p))
				}
			default:
				switch at(p) {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					current = append(current, at(p))
				}
			}
			if at(p) != 0 {
				p++
			}
		}
		vector = append(vector, string(current))
	}
}

func isHexDigit(c byte) bool { return isHex(c) }

func FuzzReplyReader(f *testing.F) {
	for _, c := range replyCases {
		f.Add([]byte(c.in))
	}
	for _, c := range malformedReplies {
		if len(c.in) < 1000 {
			f.Add([]byte(c.in))
		}
	}
	f.Add([]byte("$3\r\nabc\r\n$3\r\nabc\r\n"))
	f.Add([]byte("*1\r\n$70000\r\n" + strings.Repeat("x", 70000) + "\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := readOneReplyFuzz(t, data, func(r io.Reader) io.Reader { return r })
		for _, s := range splitters[1:] {
			got, err := readOneReplyFuzz(t, data, s.wrap)
			if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("%s: framed %q, %v; whole: %q, %v", s.name, got, err, want, wantErr)
			}
		}
		// Where the input starts with a well-formed reply, exactly that reply is consumed.
		if n, ok := frameReply(data, 0); ok {
			if wantErr != nil || len(want) != n {
				t.Fatalf("a %d-byte reply leads the input; we consumed %d bytes, %v", n, len(want), wantErr)
			}
		}
	})
}

// readOneReplyFuzz frames the first reply of data and checks the sink saw
// exactly the consumed bytes.
func readOneReplyFuzz(t *testing.T, data []byte, wrap func(io.Reader) io.Reader) ([]byte, error) {
	src := &countingReader{r: wrap(bytes.NewReader(data))} // counts what the ReplyReader was given
	rr := NewReplyReader(src)
	var sink sinkRecorder
	err := rr.ReadReply(&sink)
	if err != nil {
		return nil, err
	}
	n := src.n - rr.Buffered()
	if !bytes.Equal(sink.data.Bytes(), data[:n]) || sink.lasts != 1 || !sink.lastSeen {
		t.Fatalf("sink got %q (last %d/%v), consumed %q", sink.data.Bytes(), sink.lasts, sink.lastSeen, data[:n])
	}
	return data[:n], nil
}

// frameReply is a strict, recursive reference framer: it returns the length
// of the well-formed reply at data[i:] (CRLF line endings, canonical lengths,
// CRLF after payloads).
func frameReply(data []byte, i int) (int, bool) {
	return frameDepth(data, i, 0)
}

func frameDepth(data []byte, i, depth int) (int, bool) {
	if depth > 100 || i >= len(data) {
		return 0, false
	}
	end := bytes.Index(data[i:], []byte("\r\n"))
	if end < 1 {
		return 0, false
	}
	line := data[i+1 : i+end]
	next := i + end + 2
	if bytes.ContainsAny(line, "\r\n") {
		return 0, false
	}
	count := func() (int, bool) {
		if string(line) == "-1" && (data[i] == '$' || data[i] == '*') {
			return -1, true
		}
		n, ok := ParseInt(line)
		return int(n), ok && n >= 0 && n < 1<<20
	}
	switch data[i] {
	case '+', '-', ':', ',', '#', '(', '_':
		return next - i, true
	case '$', '=', '!':
		n, ok := count()
		if !ok {
			return 0, false
		}
		if n < 0 {
			return next - i, true
		}
		if next+n+2 > len(data) || string(data[next+n:next+n+2]) != "\r\n" {
			return 0, false
		}
		return next + n + 2 - i, true
	case '*', '~', '>', '%', '|':
		n, ok := count()
		if !ok {
			return 0, false
		}
		switch data[i] {
		case '%':
			n *= 2
		case '|':
			n = 2*n + 1
		}
		for range n {
			m, ok := frameDepth(data, next, depth+1)
			if !ok {
				return 0, false
			}
			next += m
		}
		return next - i, true
	}
	return 0, false
}
