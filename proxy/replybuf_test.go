package proxy

import (
	"bytes"
	"net"
	"testing"
)

// bytes returns the queued bytes in one slice.
func (b *replyBuf) bytes() []byte { return bytes.Join(b.bufs, nil) }

func TestReplyBuf(t *testing.T) {
	t.Run("bytes come out in order whatever the write sizes", func(t *testing.T) {
		var b replyBuf
		var want []byte
		for i, size := range []int{1, 700, replyChunk, 3, 2*replyChunk + 5, 100} {
			p := bytes.Repeat([]byte{byte('a' + i)}, size)
			b.write(p)
			want = append(want, p...)
		}
		if !bytes.Equal(b.bytes(), want) || b.n != len(want) {
			t.Fatalf("queued %d bytes (n=%d), want %d in order", len(b.bytes()), b.n, len(want))
		}
	})
	t.Run("what it holds is what it counts, past the first chunk in whole chunks", func(t *testing.T) {
		var b replyBuf
		for range 1000 {
			b.write(make([]byte, 1000))
		}
		capacity := 0
		for i, buf := range b.bufs {
			capacity += cap(buf)
			if i > 0 && cap(buf) != replyChunk {
				t.Fatalf("buffer %d holds %d bytes, not a chunk", i, cap(buf))
			}
		}
		if b.held != capacity {
			t.Fatalf("counts %d bytes, holds %d", b.held, capacity)
		}
		if b.held > b.n+replyChunk {
			t.Fatalf("holds %d bytes for %d queued", b.held, b.n)
		}
	})
	t.Run("a small client stays small", func(t *testing.T) {
		var b replyBuf
		b.write([]byte("+OK\r\n"))
		if b.held > 512 {
			t.Fatalf("holds %d bytes for a 5-byte reply", b.held)
		}
	})
	t.Run("reset keeps one chunk at most for reuse", func(t *testing.T) {
		var b replyBuf
		b.write(make([]byte, 5*replyChunk))
		b.reset()
		if b.n != 0 || len(b.bufs) != 1 || b.held != replyChunk || len(b.bufs[0]) != 0 {
			t.Fatalf("after reset: n=%d, %d buffers, held %d", b.n, len(b.bufs), b.held)
		}
	})
	t.Run("writeTo sends everything and leaves the buffers intact", func(t *testing.T) {
		var b replyBuf
		want := bytes.Repeat([]byte("0123456789"), replyChunk/4)
		b.write(want)
		client, server := net.Pipe()
		got := make(chan []byte)
		go func() {
			buf := make([]byte, len(want))
			n := 0
			for n < len(buf) {
				k, err := server.Read(buf[n:])
				if err != nil {
					break
				}
				n += k
			}
			got <- buf[:n]
		}()
		n, err := b.writeTo(client, new(net.Buffers))
		if err != nil || n != int64(len(want)) || !bytes.Equal(<-got, want) {
			t.Fatalf("wrote %d of %d bytes: %v", n, len(want), err)
		}
		if !bytes.Equal(b.bytes(), want) {
			t.Fatal("writeTo consumed the buffers")
		}
	})
}
