package resp

import (
	"bytes"
	"fmt"
	"io"
)

// Sink receives one reply's bytes in order. Write must copy p before it
// returns: p points into the ReplyReader's buffer. last is true on the final
// chunk of the reply.
type Sink interface {
	WriteReply(p []byte, last bool)
}

const (
	replyBufferSize = 64 << 10
	maxReplyLine    = 16 << 20 // longest simple string / error / number line accepted from upstream
)

// ReplyReader frames replies read from one upstream connection. It is owned
// by that connection's reader goroutine. Small replies reach the Sink in one
// chunk; replies larger than the buffer are streamed through it.
type ReplyReader struct {
	rd  io.Reader
	buf []byte
	r   int // start of the unread data
	w   int // end of valid data
}

// NewReplyReader returns a reader of replies from rd.
func NewReplyReader(rd io.Reader) *ReplyReader {
	return &ReplyReader{rd: rd, buf: make([]byte, replyBufferSize)}
}

// Peek returns the first byte of the next reply (its RESP type), blocking
// until one arrives.
func (rr *ReplyReader) Peek() (byte, error) {
	for rr.r == rr.w {
		if err := rr.fill(); err != nil {
			return 0, err
		}
	}
	return rr.buf[rr.r], nil
}

// Buffered reports whether unread reply bytes are already buffered.
func (rr *ReplyReader) Buffered() int { return rr.w - rr.r }

func (rr *ReplyReader) fill() error {
	if rr.r == rr.w {
		rr.r, rr.w = 0, 0
	}
	if rr.w == len(rr.buf) {
		if rr.r == 0 {
			return fmt.Errorf("%w: line longer than %d bytes", ErrBadReply, len(rr.buf))
		}
		rr.w = copy(rr.buf, rr.buf[rr.r:rr.w])
		rr.r = 0
	}
	n, err := rr.rd.Read(rr.buf[rr.w:])
	rr.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// ReadReply reads one complete reply, including any RESP3 attribute before
// it, and hands its bytes to sink. On error the connection is unusable; the
// sink may have received part of the reply without last=true.
func (rr *ReplyReader) ReadReply(sink Sink) error {
	pending := 1  // values still to read at any depth
	start := rr.r // first byte not yet handed to sink
	pos := rr.r
	for pending > 0 {
		// Make sure a full header line is buffered, handing completed bytes
		// to the sink when the buffer must be compacted.
		nl := bytes.IndexByte(rr.buf[pos:rr.w], '\n')
		for nl < 0 {
			searched := rr.w - pos // bytes after pos known to hold no '\n'; they survive fill
			if rr.w == len(rr.buf) && start < pos {
				sink.WriteReply(rr.buf[start:pos], false)
				rr.r = pos
				start = pos
			}
			if rr.w == len(rr.buf) && rr.r == 0 {
				if err := rr.growFor(rr.w - rr.r + 1); err != nil {
					return err
				}
			}
			off := pos - rr.r
			if err := rr.fill(); err != nil {
				return err
			}
			pos, start = rr.r+off, rr.r // start == rr.r holds throughout
			if i := bytes.IndexByte(rr.buf[pos+searched:rr.w], '\n'); i >= 0 {
				nl = searched + i // not rescanning keeps a long line linear, not quadratic
			}
		}
		line := rr.buf[pos : pos+nl+1]
		pos += nl + 1
		pending--
		switch line[0] {
		case '+', '-', ':', ',', '#', '(', '_':
		case '*', '~', '>', '%', '|':
			n, err := headerInt(line)
			if err != nil {
				return err
			}
			if n > 0 {
				switch line[0] {
				case '%':
					n *= 2
				case '|':
					n = 2*n + 1 // attribute pairs, then the value they annotate
				}
				pending += int(n)
			} else if line[0] == '|' {
				pending++
			}
		case '$', '=', '!':
			n, err := headerInt(line)
			if err != nil {
				return err
			}
			if n < 0 {
				continue // null bulk
			}
			var serr error
			pos, start, serr = rr.skipPayload(sink, pos, start, int(n)+2)
			if serr != nil {
				return serr
			}
		default:
			return fmt.Errorf("%w: unexpected type byte %q", ErrBadReply, line[0])
		}
	}
	sink.WriteReply(rr.buf[start:pos], true)
	rr.r = pos
	return nil
}

// skipPayload moves past size bytes of bulk payload starting at pos,
// streaming them to sink when they do not fit in the buffer. It returns the
// new pos and start.
func (rr *ReplyReader) skipPayload(sink Sink, pos, start, size int) (int, int, error) {
	if rr.w-pos >= size {
		return pos + size, start, nil
	}
	// Hand what we have, then stream the rest straight from the buffer.
	sink.WriteReply(rr.buf[start:rr.w], false)
	size -= rr.w - pos
	rr.r, rr.w = 0, 0
	for {
		if err := rr.fill(); err != nil {
			return 0, 0, err
		}
		if rr.w >= size {
			return size, 0, nil // the caller hands buf[0:size] with what follows
		}
		sink.WriteReply(rr.buf[:rr.w], false)
		size -= rr.w
		rr.r, rr.w = 0, 0
	}
}

// growFor doubles the buffer until it can hold n more bytes, up to maxReplyLine.
func (rr *ReplyReader) growFor(n int) error {
	size := len(rr.buf)
	for size < n+rr.w-rr.r || size == len(rr.buf) {
		size *= 2
	}
	if size > maxReplyLine {
		return fmt.Errorf("%w: line longer than %d bytes", ErrBadReply, maxReplyLine)
	}
	nb := make([]byte, size)
	rr.w = copy(nb, rr.buf[rr.r:rr.w])
	rr.r = 0
	rr.buf = nb
	return nil
}

// headerInt parses the integer of a header line like "*3\r\n".
func headerInt(line []byte) (int64, error) {
	b := line[1:]
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty length", ErrBadReply)
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > 1<<40 {
			return 0, fmt.Errorf("%w: bad length %q", ErrBadReply, line)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// ReplyHeader reads the first line of a reply: its type byte and the integer
// that line carries (an aggregate's length, a bulk's length, an integer
// reply's value), and the offset just past the line. ok is false when reply
// does not start with a whole such line.
func ReplyHeader(reply []byte) (kind byte, n int64, next int, ok bool) {
	nl := bytes.IndexByte(reply, '\n')
	if nl < 2 {
		return 0, 0, 0, false
	}
	switch reply[0] {
	case '*', '~', '%', '>', '$', '=', '!', ':':
	default:
		return 0, 0, 0, false
	}
	n, err := headerInt(reply[:nl+1])
	if err != nil {
		return 0, 0, 0, false
	}
	return reply[0], n, nl + 1, true
}
