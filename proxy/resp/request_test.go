package resp

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// requestCase is one input and what RequestReader must make of it.
type requestCase struct {
	name string
	in   string
	lim  Limits
	want [][]string
	err  string // errText of the error that ends the input; "" means "EOF"
}

func (c requestCase) expected() parsed {
	p := parsed{cmds: c.want, err: c.err}
	if p.err == "" {
		p.err = "EOF"
	}
	return p
}

var multibulkCases = []requestCase{
	{name: "a multibulk command is split into its arguments",
		in: "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", want: [][]string{cmd("SET key value")}},
	{name: "pipelined commands in one read come back one by one",
		in:   mb("SET", "a", "1") + mb("GET", "a") + mb("PING"),
		want: [][]string{cmd("SET a 1"), cmd("GET a"), cmd("PING")}},
	{name: "a bulk may hold CR, LF, NUL and spaces",
		in: mb("SET", "k", "a\r\nb\x00 c"), want: [][]string{args("SET", "k", "a\r\nb\x00 c")}},
	{name: "an empty bulk is an empty argument",
		in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", want: [][]string{args("ECHO", "")}},
	{name: "*0 and *-1 are skipped like Redis does",
		in: "*0\r\n*-1\r\n" + mb("PING"), want: [][]string{cmd("PING")}},
	{name: "any negative multibulk count is skipped",
		in: "*-5\r\n" + mb("PING"), want: [][]string{cmd("PING")}},
	{name: "the two bytes after a bulk payload are skipped unchecked, as Redis does",
		in: "*1\r\n$4\r\nPINGxx" + mb("PING"), want: [][]string{cmd("PING"), cmd("PING")}},
	{name: "the byte after a header's CR is skipped unchecked, as Redis does",
		in: "*1\rX$4\r\nPING\r\n", want: [][]string{cmd("PING")}},
	{name: "multibulk and inline commands can be mixed on one connection",
		in: "PING\r\n" + mb("GET", "k") + "GET k\n", want: [][]string{cmd("PING"), cmd("GET k"), cmd("GET k")}},
	{name: "a command cut short by EOF is not returned",
		in: mb("PING") + "*2\r\n$3\r\nGET\r\n$1\r\n", want: [][]string{cmd("PING")}},
	{name: "the largest bulk allowed by MaxBulkLen is accepted",
		in: mb("ECHO", "0123456789"), lim: Limits{MaxBulkLen: 10}, want: [][]string{cmd("ECHO 0123456789")}},
	{name: "the most arguments allowed by MaxMultibulkLen are accepted",
		in: mb("A", "B", "C"), lim: Limits{MaxMultibulkLen: 3}, want: [][]string{cmd("A B C")}},
}

var inlineCases = []requestCase{
	{name: "an inline command splits on spaces",
		in: "SET key value\r\n", want: [][]string{cmd("SET key value")}},
	{name: "an inline line may end in LF alone",
		in: "SET key value\nGET key\n", want: [][]string{cmd("SET key value"), cmd("GET key")}},
	{name: "leading, trailing and repeated spaces and tabs are ignored",
		in: "  \tSET   key\t value  \r\n", want: [][]string{cmd("SET key value")}},
	{name: "only the CR right before LF is part of the line ending",
		in: "ECHO a\r\r\n", want: [][]string{cmd("ECHO a")}},
	{name: "vertical tab and form feed do not end an unquoted argument",
		in: "ECHO a\vb\fc\n", want: [][]string{args("ECHO", "a\vb\fc")}},
	{name: "double quotes keep spaces",
		in: "SET k \"hello world\"\n", want: [][]string{args("SET", "k", "hello world")}},
	{name: "double quotes take the escapes \\n \\r \\t \\b \\a \\\\ and \\\"",
		in:   `ECHO "1\n2\r3\t4\b5\a6\\7\"8"` + "\n",
		want: [][]string{args("ECHO", "1\n2\r3\t4\b5\a6\\7\"8")}},
	{name: "double quotes take \\xHH in either case",
		in: `ECHO "\x41\x6a\x4A\x00\xff"` + "\n", want: [][]string{args("ECHO", "AjJ\x00\xff")}},
	{name: "a \\x without two hex digits is an ordinary escape of x",
		in: `ECHO "\x4g\x"` + "\n", want: [][]string{args("ECHO", "x4gx")}},
	{name: "an unknown escape stands for its character",
		in: `ECHO "\q\'"` + "\n", want: [][]string{args("ECHO", "q'")}},
	{name: "single quotes take only \\' and keep other backslashes",
		in: `ECHO 'it\'s \n \\ x'` + "\n", want: [][]string{args("ECHO", `it's \n \\ x`)}},
	{name: "a backslash before the closing single quote escapes it",
		in: `ECHO 'a\\'` + "\n", err: "ERR Protocol error: unbalanced quotes in request"},
	{name: "single quotes keep double quotes and spaces",
		in: `ECHO 'a "b" c'` + "\n", want: [][]string{args("ECHO", `a "b" c`)}},
	{name: "empty quotes are empty arguments",
		in: `SET "" ''` + "\n", want: [][]string{args("SET", "", "")}},
	{name: "a quote may start in the middle of an argument",
		in: `ECHO ab"c d"` + "\n", want: [][]string{args("ECHO", "abc d")}},
	{name: "a closing quote followed by a tab, \\v or the end of line is accepted",
		in: "ECHO \"a\"\t'b'\v\"c\"\n", want: [][]string{args("ECHO", "a", "b", "c")}},
	{name: "an empty line is skipped",
		in: "\r\n\n" + "PING\r\n", want: [][]string{cmd("PING")}},
	{name: "a line of spaces is skipped",
		in: "   \t \r\nPING\r\n", want: [][]string{cmd("PING")}},
	{name: "a NUL ends the line, as in sdssplitargs",
		in: "ECHO a\x00b c\nPING\n", want: [][]string{cmd("ECHO a"), cmd("PING")}},
	{name: "a line holding only a NUL is skipped, not spun on",
		in: "\x00\nPING\n", want: [][]string{cmd("PING")}},
	{name: "a NUL right after an argument ends it",
		in: "PING\x00\n", want: [][]string{cmd("PING")}},
	{name: "the longest inline line allowed by MaxInlineSize is accepted",
		in: "ECHO 0123456789\r\n", lim: Limits{MaxInlineSize: 16}, want: [][]string{cmd("ECHO 0123456789")}},
}

// protocolErrorCase is malformed input and the reply Redis 7.0 gives for it.
// redis, when set, is what a real redis-server does instead (see TestRedisAgreesOnProtocolErrors).
type protocolErrorCase struct {
	requestCase
	redis string
}

func pe(name, in, msg string) protocolErrorCase {
	return protocolErrorCase{requestCase: requestCase{name: name, in: in, err: "ERR Protocol error: " + msg}}
}

func (c protocolErrorCase) withLimits(l Limits) protocolErrorCase { c.lim = l; return c }

func (c protocolErrorCase) redisDoes(s string) protocolErrorCase { c.redis = s; return c }

var big = strings.Repeat

var protocolErrorCases = []protocolErrorCase{
	pe("a multibulk count that is not a number is invalid", "*abc\r\n", "invalid multibulk length"),
	pe("an empty multibulk count is invalid", "*\r\n", "invalid multibulk length"),
	pe("a multibulk count with a plus sign is invalid", "*+1\r\n$4\r\nPING\r\n", "invalid multibulk length"),
	pe("a multibulk count with a leading zero is invalid", "*01\r\n$4\r\nPING\r\n", "invalid multibulk length"),
	pe("a multibulk count of minus zero is invalid", "*-0\r\n", "invalid multibulk length"),
	pe("a multibulk count with a space is invalid", "*1 \r\n$4\r\nPING\r\n", "invalid multibulk length"),
	pe("a multibulk count over INT_MAX is invalid", "*3000000000\r\n", "invalid multibulk length"),
	pe("a multibulk count ending in LF alone runs into the next line", "*1\n$4\nPING\r\n", "invalid multibulk length"),
	pe("a multibulk count over MaxMultibulkLen is invalid", "*4\r\n", "invalid multibulk length").
		withLimits(Limits{MaxMultibulkLen: 3}).redisDoes("(no reply)"),
	pe("a multibulk count over the default of 1<<20 is invalid", "*2000000\r\n", "invalid multibulk length").
		redisDoes("(no reply)"),
	pe("a bulk count that is not a number is invalid", "*1\r\n$abc\r\n", "invalid bulk length"),
	pe("a bulk count with a plus sign is invalid", "*1\r\n$+4\r\nPING\r\n", "invalid bulk length"),
	pe("a bulk count with a leading zero is invalid", "*1\r\n$04\r\nPING\r\n", "invalid bulk length"),
	pe("a bulk count with a space is invalid", "*1\r\n$ 4\r\nPING\r\n", "invalid bulk length"),
	pe("a negative bulk count is invalid", "*1\r\n$-1\r\n", "invalid bulk length"),
	pe("a bulk count of minus zero is invalid", "*1\r\n$-0\r\n", "invalid bulk length"),
	pe("a bulk count overflowing int64 is invalid", "*1\r\n$9223372036854775808\r\n", "invalid bulk length"),
	pe("a bulk count over proto-max-bulk-len is invalid", "*1\r\n$600000000\r\n", "invalid bulk length"),
	pe("a bulk count over MaxBulkLen is invalid", "*1\r\n$11\r\n", "invalid bulk length").
		withLimits(Limits{MaxBulkLen: 10}).redisDoes("(no reply)"),
	pe("an argument that is not a bulk is refused", "*1\r\nX\r\n", "expected '$', got 'X'"),
	pe("an argument line starting with CR is reported with a space", "*1\r\n\r\n", "expected '$', got ' '"),
	pe("an argument line starting with LF is reported with a space", "*1\r\n\n\r\n", "expected '$', got ' '"),
	pe("an inline argument as a multibulk element is refused", "*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"),
	pe("an unterminated double quote is unbalanced", "ECHO \"abc\n", "unbalanced quotes in request"),
	pe("an unterminated single quote is unbalanced", "ECHO 'abc\n", "unbalanced quotes in request"),
	pe("a closing double quote followed by a letter is unbalanced", "ECHO \"abc\"def\n", "unbalanced quotes in request"),
	pe("a closing single quote followed by a letter is unbalanced", "ECHO 'a'b\n", "unbalanced quotes in request"),
	pe("a backslash escaping the closing double quote leaves it open", "ECHO \"a\\\"\n", "unbalanced quotes in request"),
	pe("a NUL inside quotes ends the line and leaves them open", "ECHO \"a\x00\"\n", "unbalanced quotes in request").
		redisDoes("(no reply)"),
	pe("an inline line without LF over 64 KB is too big", big("x", 70000), "too big inline request"),
	pe("an inline line over MaxInlineSize is too big even with its LF", "ECHO 0123456789X\r\n", "too big inline request").
		withLimits(Limits{MaxInlineSize: 16}).redisDoes("$11\r\n0123456789X\r\n"),
	pe("a multibulk count line over 64 KB is too big", "*"+big("1", 70000), "too big mbulk count string"),
	pe("a bulk count line over 64 KB is too big", "*1\r\n$"+big("1", 70000), "too big bulk count string"),
}

func TestRequestReaderParses(t *testing.T) {
	for _, group := range [][]requestCase{multibulkCases, inlineCases} {
		for _, c := range group {
			t.Run(c.name, func(t *testing.T) { checkAllSplits(t, c) })
		}
	}
}

func TestRequestReaderRejects(t *testing.T) {
	for _, c := range protocolErrorCases {
		t.Run(c.name, func(t *testing.T) { checkAllSplits(t, c.requestCase) })
	}
	t.Run("a ProtocolError is reported as the -ERR line Redis sends", func(t *testing.T) {
		_, err := NewRequestReader(strings.NewReader("*x\r\n"), Limits{}).ReadCommand()
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Msg != "invalid multibulk length" {
			t.Fatalf("err = %#v", err)
		}
		if got := string(AppendError(nil, err.Error())); got != "-ERR Protocol error: invalid multibulk length\r\n" {
			t.Fatalf("reply = %q", got)
		}
	})
}

// checkAllSplits parses c.in whole and split every way, expecting the same.
func checkAllSplits(t *testing.T, c requestCase) {
	t.Helper()
	want := c.expected()
	for _, s := range splitters {
		got := parseAll(s.wrap(strings.NewReader(c.in)), c.lim)
		if !reflect.DeepEqual(got.cmds, want.cmds) || got.err != want.err {
			t.Errorf("%s:\n got %v\nwant %v", s.name, got, want)
		}
	}
}

func TestRequestReaderRaw(t *testing.T) {
	t.Run("Raw of a multibulk command is its exact bytes and its args point into it", func(t *testing.T) {
		first, second := mb("GET", "k"), mb("PING")
		rr := NewRequestReader(strings.NewReader(first+second), Limits{})
		for _, want := range []string{first, second} {
			c, err := rr.ReadCommand()
			if err != nil || string(c.Raw) != want {
				t.Fatalf("Raw = %q, %v; want %q", c.Raw, err, want)
			}
			last := c.Args[len(c.Args)-1]
			if &c.Raw[len(c.Raw)-2-len(last)] != &last[0] {
				t.Fatal("last argument is not a sub-slice of Raw")
			}
			if cap(last) != len(last) {
				t.Fatal("an argument's capacity reaches past it: appending to it would overwrite Raw")
			}
		}
	})
	t.Run("Raw of an inline command is nil", func(t *testing.T) {
		c, err := NewRequestReader(strings.NewReader("PING\r\n"), Limits{}).ReadCommand()
		if err != nil || c.Raw != nil {
			t.Fatalf("Raw = %q, %v", c.Raw, err)
		}
	})
	t.Run("Buffered counts pipelined bytes not yet returned", func(t *testing.T) {
		in := mb("PING") + mb("PING")
		rr := NewRequestReader(strings.NewReader(in), Limits{})
		if _, err := rr.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if got := rr.Buffered(); got != len(in)/2 {
			t.Fatalf("Buffered = %d, want %d", got, len(in)/2)
		}
		if _, err := rr.ReadCommand(); err != nil || rr.Buffered() != 0 {
			t.Fatalf("after the last command: Buffered = %d, %v", rr.Buffered(), err)
		}
	})
}

func TestRequestReaderLimits(t *testing.T) {
	t.Run("a command over MaxQueryBuffer is ErrTooLarge", func(t *testing.T) {
		in := mb("SET", "k", big("v", 200<<10))
		for _, s := range splitters {
			_, err := NewRequestReader(s.wrap(strings.NewReader(in)), Limits{MaxQueryBuffer: 100 << 10}).ReadCommand()
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s: err = %v, want ErrTooLarge", s.name, err)
			}
		}
	})
	t.Run("a command just under MaxQueryBuffer is accepted", func(t *testing.T) {
		in := mb("SET", "k", big("v", 99<<10))
		c, err := NewRequestReader(strings.NewReader(in), Limits{MaxQueryBuffer: 100 << 10}).ReadCommand()
		if err != nil || len(c.Args[2]) != 99<<10 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a MaxQueryBuffer below the initial buffer size is still enforced", func(t *testing.T) {
		in := mb("SET", "k", big("v", 2000))
		_, err := NewRequestReader(strings.NewReader(in), Limits{MaxQueryBuffer: 1024}).ReadCommand()
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	t.Run("an inline line over MaxQueryBuffer is ErrTooLarge before it is too big for MaxInlineSize", func(t *testing.T) {
		_, err := NewRequestReader(strings.NewReader(big("x", 10000)), Limits{MaxQueryBuffer: 4096}).ReadCommand()
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
}

// chunkReader hands out at most n bytes per Read, like a socket.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestRequestReaderBigCommands(t *testing.T) {
	value := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MB
	in := append(AppendCommand(nil, []byte("SET"), []byte("big"), value), mb("GET", "big")...)
	for _, s := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"in 16 KB reads", func(r io.Reader) io.Reader { return chunkReader{r, 16 << 10} }},
		{"in 1000-byte reads", func(r io.Reader) io.Reader { return chunkReader{r, 1000} }},
		{"half of each read", iotest.HalfReader},
	} {
		t.Run("a 5 MB bulk larger than the buffer is read "+s.name, func(t *testing.T) {
			rr := NewRequestReader(s.wrap(bytes.NewReader(in)), Limits{})
			c, err := rr.ReadCommand()
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Args) != 3 || !bytes.Equal(c.Args[2], value) || !bytes.Equal(c.Raw, in[:len(in)-len(mb("GET", "big"))]) {
				t.Fatalf("big command parsed wrong: %d args", len(c.Args))
			}
			if c, err := rr.ReadCommand(); err != nil || string(c.Args[0]) != "GET" {
				t.Fatalf("command after the big one: %q, %v", c.Args, err)
			}
		})
	}
	t.Run("the buffer shrinks back once a big command is consumed", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(in[:len(in)-len(mb("GET", "big"))])
			_, _ = pw.Write([]byte(mb("GET", "big")))
			_ = pw.Close()
		}()
		rr := NewRequestReader(pr, Limits{})
		if _, err := rr.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if cap(rr.buf) < 5<<20 {
			t.Fatalf("buffer is %d bytes while holding a 5 MB command", cap(rr.buf))
		}
		if _, err := rr.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if cap(rr.buf) > steadyReadBuffer {
			t.Fatalf("buffer still %d bytes after the big command", cap(rr.buf))
		}
	})
	t.Run("an idle client's buffer stays small", func(t *testing.T) {
		rr := NewRequestReader(strings.NewReader("PING\r\n"), Limits{})
		if _, err := rr.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if cap(rr.buf) != initialReadBuffer {
			t.Fatalf("buffer is %d bytes", cap(rr.buf))
		}
	})
	t.Run("a reader on a ReadyReader holds no buffer once its input is parsed", func(t *testing.T) {
		rr := NewRequestReader(&readyReader{rd: strings.NewReader(mb("PING"))}, Limits{})
		if _, err := rr.ReadCommand(); err != nil {
			t.Fatal(err)
		}
		if _, err := rr.ReadCommand(); err != io.EOF {
			t.Fatalf("err = %v", err)
		}
		if rr.buf != nil {
			t.Fatalf("holding %d bytes at EOF", cap(rr.buf))
		}
	})
	t.Run("a partial command keeps its lent buffer until it is complete", func(t *testing.T) {
		in := mb("SET", "k", big("v", 40<<10)) + mb("GET", "k")
		src := &readyReader{rd: chunkReader{strings.NewReader(in), 1000}}
		rr := NewRequestReader(src, Limits{})
		for _, want := range []string{"SET", "GET"} {
			if c, err := rr.ReadCommand(); err != nil || string(c.Args[0]) != want {
				t.Fatalf("got %q, %v; want %s", c.Args, err, want)
			}
		}
		if src.waits != 1 {
			t.Fatalf("waited for input %d times for one burst", src.waits)
		}
	})
	t.Run("a command of many small arguments spanning many reads is parsed once", func(t *testing.T) {
		want := make([]string, 100001)
		want[0] = "MSET"
		for i := 1; i < len(want); i++ {
			want[i] = "k"
		}
		in := mb(want...)
		got := parseAll(chunkReader{strings.NewReader(in), 4096}, Limits{})
		if got.err != "EOF" || len(got.cmds) != 1 || !reflect.DeepEqual(got.cmds[0], want) {
			t.Fatalf("err %q, %d commands", got.err, len(got.cmds))
		}
	})
}

func TestRequestReaderReaderErrors(t *testing.T) {
	t.Run("a read error is returned as is", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := NewRequestReader(iotest.ErrReader(boom), Limits{}).ReadCommand()
		if err != boom {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a reader that returns nothing and no error is io.ErrNoProgress", func(t *testing.T) {
		_, err := NewRequestReader(zeroReader{}, Limits{}).ReadCommand()
		if err != io.ErrNoProgress {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an error arriving with the last bytes still yields the commands before it", func(t *testing.T) {
		got := parseAll(iotest.TimeoutReader(strings.NewReader(mb("PING"))), Limits{})
		if len(got.cmds) != 1 || got.err != iotest.ErrTimeout.Error() {
			t.Fatalf("%v", got)
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }
