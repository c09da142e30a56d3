package resp

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	tidwall "github.com/tidwall/resp"
)

const benchBatch = 100

// setBatch is benchBatch pipelined "SET key:NNN <16-byte value>" commands.
func setBatch() []byte {
	var b []byte
	for i := range benchBatch {
		b = AppendCommandStrings(b, "SET", fmt.Sprintf("key:%03d", i), "0123456789abcdef")
	}
	return b
}

func BenchmarkRequestReader(b *testing.B) {
	batch := setBatch()
	src := bytes.NewReader(batch)
	rr := NewRequestReader(src, Limits{})
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(batch)
		for range benchBatch {
			if _, err := rr.ReadCommand(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTidwallReadMultiBulk parses the same batch with tidwall/resp, for
// comparison: it materializes every command as a []Value of fresh copies.
func BenchmarkTidwallReadMultiBulk(b *testing.B) {
	batch := setBatch()
	src := bytes.NewReader(batch)
	rd := tidwall.NewReader(src)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(batch)
		for range benchBatch {
			if _, _, _, err := rd.ReadMultiBulk(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

type discardSink struct{ n int }

func (d *discardSink) WriteReply(p []byte, last bool) { d.n += len(p) }

func BenchmarkReplyReader(b *testing.B) {
	array := AppendArray(nil, 10)
	for i := range 10 {
		array = AppendBulkString(array, fmt.Sprintf("value:%03d", i))
	}
	for _, c := range []struct {
		name  string
		reply []byte
	}{
		{"+OK", AppendSimple(nil, "OK")},
		{"$16 bulk", AppendBulkString(nil, "0123456789abcdef")},
		{"*10 array of bulks", array},
	} {
		b.Run(c.name, func(b *testing.B) {
			batch := bytes.Repeat(c.reply, benchBatch)
			src := bytes.NewReader(batch)
			rr := NewReplyReader(src)
			var sink discardSink
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(batch)
				for range benchBatch {
					if err := rr.ReadReply(&sink); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func TestSteadyStateReadsDoNotAllocate(t *testing.T) {
	for _, c := range []struct{ name, in string }{
		{"a multibulk command", mb("SET", "key:001", "0123456789abcdef")},
		{"an inline command", "SET key:001 \"0123456789\\x41bcdef\"\r\n"},
	} {
		t.Run("reading "+c.name+" allocates nothing", func(t *testing.T) {
			rr := NewRequestReader(&repeatReader{data: []byte(c.in)}, Limits{})
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := rr.ReadCommand(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per command", allocs)
			}
		})
		t.Run("reading "+c.name+" into buffers lent per read allocates nothing", func(t *testing.T) {
			// One command per read: the buffer goes back to the pool after each.
			rr := NewRequestReader(&readyReader{rd: repeatOnce(c.in)}, Limits{})
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := rr.ReadCommand(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per command", allocs)
			}
		})
	}
	for _, c := range []struct{ name, in string }{
		{"+OK", "+OK\r\n"},
		{"a bulk", "$16\r\n0123456789abcdef\r\n"},
		{"a RESP3 map with an attribute", "|1\r\n+a\r\n:1\r\n%2\r\n+k\r\n$1\r\nv\r\n+k2\r\n_\r\n"},
	} {
		t.Run("framing "+c.name+" allocates nothing", func(t *testing.T) {
			rr := NewReplyReader(&repeatReader{data: []byte(c.in)})
			var sink discardSink
			allocs := testing.AllocsPerRun(1000, func() {
				if err := rr.ReadReply(&sink); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per reply", allocs)
			}
		})
	}
}

// repeatOnce returns a reader that yields in once per read, forever.
func repeatOnce(in string) io.Reader {
	return readerFunc(func(p []byte) (int, error) { return copy(p, in), nil })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
