package proxy

import "net"

// replyChunk is the unit in which a replyBuf holds many bytes: past its
// first chunk, a buffer grows by whole chunks and never by copying into a
// doubled array, so what it holds is what it counts, and a client's output
// never leaves a trail of outgrown arrays for the garbage collector.
const replyChunk = 64 << 10

// replyBuf is a queue of reply bytes in chunks: the first grows by append up
// to replyChunk (an idle or chatty client stays small), every later one is a
// full replyChunk. The zero value is empty. Not safe for concurrent use.
type replyBuf struct {
	bufs [][]byte // all full but the last
	n    int      // bytes queued
	held int      // capacity of bufs: the memory this buffer holds
}

// write appends p.
func (b *replyBuf) write(p []byte) {
	b.n += len(p)
	for len(p) > 0 {
		last := len(b.bufs) - 1
		switch {
		case last < 0:
			b.add(make([]byte, 0, min(replyChunk, max(512, len(p)))))
			last = 0
		case len(b.bufs[last]) == cap(b.bufs[last]) && cap(b.bufs[last]) >= replyChunk:
			b.add(make([]byte, 0, replyChunk))
			last++
		case cap(b.bufs[last])-len(b.bufs[last]) < len(p) && cap(b.bufs[last]) < replyChunk:
			old := b.bufs[last] // only the first buffer is ever smaller than a chunk
			grown := make([]byte, len(old), min(replyChunk, max(2*cap(old), len(old)+len(p))))
			copy(grown, old)
			b.held += cap(grown) - cap(old)
			b.bufs[last] = grown
		}
		buf := b.bufs[last]
		k := min(len(p), cap(buf)-len(buf))
		b.bufs[last] = append(buf, p[:k]...)
		p = p[k:]
	}
}

func (b *replyBuf) add(buf []byte) {
	b.bufs = append(b.bufs, buf)
	b.held += cap(buf)
}

// reset empties b, keeping its first buffer for reuse if that is no bigger
// than a chunk, and dropping every other one.
func (b *replyBuf) reset() {
	var keep []byte
	if len(b.bufs) > 0 && cap(b.bufs[0]) <= replyChunk {
		keep = b.bufs[0][:0]
	}
	clear(b.bufs) // let the garbage collector have the chunks
	b.bufs, b.n, b.held = b.bufs[:0], 0, 0
	if cap(b.bufs) > 64 {
		b.bufs = nil // sized for a burst long gone
	}
	if keep != nil {
		b.add(keep)
	}
}

// skip drops the first n bytes, written already; they must lie in the first
// buffer. The memory stays counted until reset.
func (b *replyBuf) skip(n int) {
	if n == 0 {
		return
	}
	b.bufs[0] = b.bufs[0][n:]
	b.n -= n
}

// writeTo writes the queued bytes to conn: one buffer with Write, several in
// one vectored write where the connection supports it. iov is scratch space
// kept across calls (net.Buffers.WriteTo consumes the slice it is given).
func (b *replyBuf) writeTo(conn net.Conn, iov *net.Buffers) (int64, error) {
	if len(b.bufs) == 1 {
		n, err := conn.Write(b.bufs[0])
		return int64(n), err
	}
	*iov = append((*iov)[:0], b.bufs...)
	scratch := *iov
	n, err := iov.WriteTo(conn)
	clear(scratch) // the chunks belong to b
	*iov = scratch[:0]
	return n, err
}
