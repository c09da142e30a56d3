package resp

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// replyCases are single complete replies; each must be framed exactly.
var replyCases = []struct{ name, in string }{
	{"a simple string is one line", "+OK\r\n"},
	{"an error is one line", "-ERR unknown command 'FOO'\r\n"},
	{"an integer is one line", ":-42\r\n"},
	{"a bulk string holds CR LF in its payload", "$6\r\na\r\nb\r\n\r\n"},
	{"an empty bulk string has a payload of just CR LF", "$0\r\n\r\n"},
	{"a null bulk has no payload", "$-1\r\n"},
	{"a null array has no elements", "*-1\r\n"},
	{"an empty array has no elements", "*0\r\n"},
	{"an array counts its elements", "*3\r\n:1\r\n$1\r\na\r\n+b\r\n"},
	{"nested arrays count at every depth", "*2\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n*0\r\n"},
	{"an array may hold null elements", "*3\r\n$-1\r\n*-1\r\n_\r\n"},
	{"a RESP3 null is one line", "_\r\n"},
	{"a RESP3 double is one line", ",3.14\r\n"},
	{"a RESP3 boolean is one line", "#t\r\n"},
	{"a RESP3 big number is one line", "(3492890328409238509324850943850943825024385\r\n"},
	{"a RESP3 verbatim string is a bulk", "=15\r\ntxt:Some string\r\n"},
	{"a RESP3 blob error is a bulk", "!21\r\nSYNTAX invalid syntax\r\n"},
	{"a RESP3 map counts two values per entry", "%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n"},
	{"a RESP3 set counts its members", "~2\r\n+a\r\n+b\r\n"},
	{"a RESP3 push is framed like an array", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"},
	{"an attribute is read together with the value it annotates",
		"|1\r\n+key-popularity\r\n*2\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n"},
	{"an attribute may annotate an element inside an aggregate", "*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n:2\r\n"},
	{"an empty attribute still annotates one value", "|0\r\n+OK\r\n"},
	{"maps nest inside sets inside pushes", ">1\r\n~1\r\n%1\r\n+k\r\n=7\r\ntxt:abc\r\n"},
	{"a line may end in LF alone", "+OK\n"},
}

// readOneReply frames the first reply of in, read through wrap, and checks
// what every reply must satisfy: the sink's chunks concatenate to exactly the
// bytes consumed, and only the final chunk is marked last.
func readOneReply(t *testing.T, in []byte, wrap func(io.Reader) io.Reader) (consumed []byte, err error) {
	t.Helper()
	src := &countingReader{r: wrap(bytes.NewReader(in))} // counts what the ReplyReader was given
	rr := NewReplyReader(src)
	var sink sinkRecorder
	err = rr.ReadReply(&sink)
	n := src.n - rr.Buffered()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(sink.data.Bytes(), in[:n]) {
		t.Fatalf("sink got %q, consumed %q", sink.data.Bytes(), in[:n])
	}
	if sink.lasts != 1 || !sink.lastSeen || sink.empty != 0 {
		t.Fatalf("%d chunks: %d marked last, final marked %v, %d empty", sink.chunks, sink.lasts, sink.lastSeen, sink.empty)
	}
	return in[:n], nil
}

func TestReplyReaderFramesEveryType(t *testing.T) {
	for _, c := range replyCases {
		t.Run(c.name, func(t *testing.T) {
			// Follow the reply with another so that over-reading shows.
			in := []byte(c.in + "+NEXT\r\n")
			for _, s := range splitters {
				got, err := readOneReply(t, in, s.wrap)
				if err != nil || string(got) != c.in {
					t.Fatalf("%s: framed %q, %v; want %q", s.name, got, err, c.in)
				}
			}
		})
	}
}

func TestReplyReaderBackToBack(t *testing.T) {
	t.Run("every reply of a batch in one read is framed in order", func(t *testing.T) {
		var all strings.Builder
		for _, c := range replyCases {
			all.WriteString(c.in)
		}
		for _, s := range splitters {
			rr := NewReplyReader(s.wrap(strings.NewReader(all.String())))
			for _, c := range replyCases {
				var sink sinkRecorder
				if err := rr.ReadReply(&sink); err != nil || sink.data.String() != c.in {
					t.Fatalf("%s: %s: got %q, %v", s.name, c.name, sink.data.String(), err)
				}
			}
			if err := rr.ReadReply(&sinkRecorder{}); err != io.EOF {
				t.Fatalf("%s: after the batch: %v, want EOF", s.name, err)
			}
		}
	})
	t.Run("Peek returns the type of the next reply without consuming it", func(t *testing.T) {
		rr := NewReplyReader(iotest.OneByteReader(strings.NewReader(">1\r\n+x\r\n:1\r\n")))
		for _, want := range ">:" {
			typ, err := rr.Peek()
			if err != nil || typ != byte(want) {
				t.Fatalf("Peek = %q, %v; want %q", typ, err, want)
			}
			if err := rr.ReadReply(&sinkRecorder{}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a huge array of small elements is framed in buffer-sized chunks", func(t *testing.T) {
		const n = 1 << 20
		in := append(AppendArray(nil, n), bytes.Repeat([]byte(":1\r\n"), n)...)
		in = append(in, "+NEXT\r\n"...)
		rr := NewReplyReader(bytes.NewReader(in))
		var sink sinkRecorder
		if err := rr.ReadReply(&sink); err != nil {
			t.Fatal(err)
		}
		if sink.data.Len() != len(in)-7 || sink.maxChunk > replyBufferSize || len(rr.buf) != replyBufferSize {
			t.Fatalf("got %d bytes, max chunk %d, buffer %d", sink.data.Len(), sink.maxChunk, len(rr.buf))
		}
	})
}

// bulkSource produces "$<n>\r\n<n pattern bytes>\r\n+NEXT\r\n" lazily, so the
// test does not hold the value either; it records how much it has produced.
type bulkSource struct {
	header   []byte
	size     int
	produced int
	trailer  []byte
}

func newBulkSource(size int) *bulkSource {
	return &bulkSource{header: []byte("$" + strconv.Itoa(size) + "\r\n"), size: size, trailer: []byte("\r\n+NEXT\r\n")}
}

func (b *bulkSource) total() int { return len(b.header) + b.size + len(b.trailer) }

// at is the byte at offset i of the whole stream.
func (b *bulkSource) at(i int) byte {
	switch {
	case i < len(b.header):
		return b.header[i]
	case i < len(b.header)+b.size:
		return byte('a' + (i-len(b.header))%26)
	default:
		return b.trailer[i-len(b.header)-b.size]
	}
}

func (b *bulkSource) Read(p []byte) (int, error) {
	n := min(len(p), b.total()-b.produced, 32<<10)
	if n == 0 {
		return 0, io.EOF
	}
	for i := range n {
		p[i] = b.at(b.produced + i)
	}
	b.produced += n
	return n, nil
}

// checkingSink compares each chunk with the source as it arrives.
type checkingSink struct {
	t        *testing.T
	src      *bulkSource
	off      int
	maxChunk int
	maxAhead int // most bytes the source had produced beyond what the sink had seen
	last     bool
}

func (s *checkingSink) WriteReply(p []byte, last bool) {
	s.maxAhead = max(s.maxAhead, s.src.produced-s.off)
	for i, c := range p {
		if c != s.src.at(s.off+i) {
			s.t.Fatalf("byte %d: got %q, want %q", s.off+i, c, s.src.at(s.off+i))
		}
	}
	s.off += len(p)
	s.maxChunk = max(s.maxChunk, len(p))
	s.last = last
}

func TestReplyReaderStreamsBigBulk(t *testing.T) {
	t.Run("a 20 MB bulk reaches the sink in order in chunks no larger than the buffer", func(t *testing.T) {
		src := newBulkSource(20 << 20)
		rr := NewReplyReader(src)
		sink := &checkingSink{t: t, src: src}
		if err := rr.ReadReply(sink); err != nil {
			t.Fatal(err)
		}
		if want := src.total() - len("+NEXT\r\n"); sink.off != want || !sink.last {
			t.Fatalf("sink got %d bytes (last %v), want %d", sink.off, sink.last, want)
		}
		if sink.maxChunk > replyBufferSize || len(rr.buf) != replyBufferSize {
			t.Fatalf("largest chunk %d, buffer %d", sink.maxChunk, len(rr.buf))
		}
		// Streaming, not buffering: the sink never lags the network by more than a buffer.
		if sink.maxAhead > replyBufferSize {
			t.Fatalf("sink lagged %d bytes behind the reads", sink.maxAhead)
		}
		var next sinkRecorder
		if err := rr.ReadReply(&next); err != nil || next.data.String() != "+NEXT\r\n" {
			t.Fatalf("reply after the bulk: %q, %v", next.data.String(), err)
		}
	})
	t.Run("a bulk whose header ends exactly at the buffer's end streams correctly", func(t *testing.T) {
		for _, pad := range []int{replyBufferSize - 8, replyBufferSize - 9, replyBufferSize - 10, replyBufferSize - 4} {
			prefix := "+" + strings.Repeat("p", pad-3) + "\r\n"
			body := strings.Repeat("b", 100<<10)
			in := prefix + "$" + strconv.Itoa(len(body)) + "\r\n" + body + "\r\n:1\r\n"
			rr := NewReplyReader(strings.NewReader(in))
			var got strings.Builder
			for range 3 {
				var s sinkRecorder
				if err := rr.ReadReply(&s); err != nil {
					t.Fatalf("pad %d: %v", pad, err)
				}
				got.Write(s.data.Bytes())
			}
			if got.String() != in {
				t.Fatalf("pad %d: replies do not concatenate to the input", pad)
			}
		}
	})
	t.Run("a 12 MB line trickling in 1400-byte reads is scanned once, not once per read", func(t *testing.T) {
		in := "-" + strings.Repeat("e", 12<<20) + "\r\n"
		frame := func(rd io.Reader) time.Duration {
			start := time.Now()
			rr := NewReplyReader(rd)
			var sink discardSink
			if err := rr.ReadReply(&sink); err != nil || sink.n != len(in) {
				t.Fatalf("framed %d bytes, %v", sink.n, err)
			}
			return time.Since(start)
		}
		// Compared with framing the same line from whole reads on the same
		// machine at the same moment: rescanning the line after each of the
		// ~9,000 reads is about 50 times slower here, one pass about as fast.
		whole := frame(strings.NewReader(in))
		trickled := frame(chunkReader{strings.NewReader(in), 1400})
		if limit := 10*whole + 100*time.Millisecond; trickled > limit {
			t.Fatalf("trickled reads took %v, whole reads %v: the line is rescanned on every read", trickled, whole)
		}
	})
	t.Run("a simple string longer than the buffer is framed whole", func(t *testing.T) {
		in := "+" + strings.Repeat("s", 1<<20) + "\r\n:1\r\n"
		got, err := readOneReply(t, []byte(in), iotest.HalfReader)
		if err != nil || len(got) != len(in)-4 {
			t.Fatalf("framed %d bytes, %v", len(got), err)
		}
	})
}

// malformedReplies are not RESP; each must give ErrBadReply, not a panic or a hang.
var malformedReplies = []struct{ name, in string }{
	{"an unknown type byte", "?\r\n"},
	{"an empty line", "\r\n"},
	{"a bare LF", "\n"},
	{"an array without a count", "*\r\n"},
	{"a bulk without a length", "$\r\n"},
	{"a bulk length that is not a number", "$abc\r\n"},
	{"an array count that is not a number", "*1x\r\n"},
	{"a map count that is too large to mean anything", "%99999999999999999999\r\n"},
	{"a streamed string, which Redis never sends", "$?\r\n;4\r\nHell\r\n;0\r\n"},
	{"an element with an unknown type", "*2\r\n:1\r\n@x\r\n"},
	{"a line longer than 16 MB", "+" + strings.Repeat("x", 17<<20)},
}

func TestReplyReaderRejects(t *testing.T) {
	for _, c := range malformedReplies {
		t.Run(c.name+" is ErrBadReply", func(t *testing.T) {
			for _, s := range splitters[:3] {
				if s.name == "one byte at a time" && len(c.in) > 1<<20 {
					continue
				}
				_, err := readOneReply(t, []byte(c.in), s.wrap)
				if !errors.Is(err, ErrBadReply) {
					t.Fatalf("%s: err = %v, want ErrBadReply", s.name, err)
				}
			}
		})
	}
	t.Run("a reply cut short ends in EOF, not a hang", func(t *testing.T) {
		for _, in := range []string{"*3\r\n:1\r\n", "$10\r\nabc", "+OK", "|1\r\n+a\r\n+b\r\n", ">2\r\n"} {
			done := make(chan error, 1)
			go func() { _, err := readOneReply(t, []byte(in), iotest.OneByteReader); done <- err }()
			select {
			case err := <-done:
				if err != io.EOF {
					t.Fatalf("%q: err = %v, want EOF", in, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%q: ReadReply hung", in)
			}
		}
	})
	t.Run("a reader that returns nothing and no error is io.ErrNoProgress", func(t *testing.T) {
		if err := NewReplyReader(zeroReader{}).ReadReply(&sinkRecorder{}); err != io.ErrNoProgress {
			t.Fatalf("err = %v", err)
		}
	})
}
