package resp

import (
	"bytes"
	"io"
	"sync"
)

// Limits bound what one client can make the reader hold. The zero value of a
// field means Redis's default for it.
type Limits struct {
	MaxBulkLen      int64 // largest bulk argument (Redis proto-max-bulk-len, 512 MB)
	MaxMultibulkLen int64 // most arguments in one command (Redis: INT_MAX; default 1<<20 here, see README)
	MaxInlineSize   int   // longest inline command or header line (Redis: 64 KB)
	MaxQueryBuffer  int   // most bytes of one command held at once (Redis client-query-buffer-limit, 1 GB)
	// MaxArgBuffer, when positive, is Redis's own client-query-buffer-limit:
	// Redis holds a large bulk argument and its CRLF whole in the query
	// buffer and closes, without a reply, a client whose buffer passes the
	// limit, so a longer argument is ErrTooLarge here. 0 = not checked.
	MaxArgBuffer int64
}

// Defaults for Limits.
const (
	DefaultMaxBulkLen      = 512 << 20
	DefaultMaxMultibulkLen = 1 << 20
	DefaultMaxInlineSize   = 64 << 10
	DefaultMaxQueryBuffer  = 1 << 30
)

func (l Limits) withDefaults() Limits {
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = DefaultMaxBulkLen
	}
	if l.MaxMultibulkLen <= 0 {
		l.MaxMultibulkLen = DefaultMaxMultibulkLen
	}
	if l.MaxInlineSize <= 0 {
		l.MaxInlineSize = DefaultMaxInlineSize
	}
	if l.MaxQueryBuffer <= 0 {
		l.MaxQueryBuffer = DefaultMaxQueryBuffer
	}
	return l
}

const (
	initialReadBuffer = 4 << 10  // a buffer held between commands stays small
	lentReadBuffer    = 16 << 10 // a buffer lent from the pool while a client has work (Redis's PROTO_IOBUF_LEN)
	steadyReadBuffer  = 64 << 10 // grown to when one command does not fit
)

// readBuffers hold the buffers lent to the readers of ReadyReaders while
// they have unparsed input, by size (lentReadBuffer, steadyReadBuffer).
var readBuffers = [2]sync.Pool{
	{New: func() any { b := make([]byte, lentReadBuffer); return &b }},
	{New: func() any { b := make([]byte, steadyReadBuffer); return &b }},
}

// ReadyReader is a source that can wait for input without holding a
// buffer. A RequestReader on a ReadyReader holds a read buffer only while
// it has unparsed bytes: once everything received is parsed, it gives the
// buffer back to a pool shared by all readers and calls ReadReady, which
// waits until input (or an error) is there and only then takes a buffer to
// read it into. Reads that complete a partial command use Read.
type ReadyReader interface {
	io.Reader
	// ReadReady waits for input and reads it into the buffer b.Take
	// returns. If it took a buffer and then finds nothing to read after
	// all, it calls b.Release before waiting again.
	ReadReady(b *Lender) (int, error)
}

// Lender lends a RequestReader's read buffer to its ReadyReader.
type Lender struct{ rr *RequestReader }

// Take returns the buffer to read into, taken from the pool.
func (l *Lender) Take() []byte {
	rr := l.rr
	if rr.buf == nil {
		rr.bufp = readBuffers[0].Get().(*[]byte)
		rr.buf = (*rr.bufp)[:min(lentReadBuffer, rr.lim.MaxQueryBuffer)]
	}
	return rr.buf[rr.w:]
}

// Release gives the buffer back to the pool; the RequestReader must hold
// no unparsed bytes.
func (l *Lender) Release() {
	rr := l.rr
	if rr.r != rr.w {
		panic("bug: resp: releasing a read buffer that holds input")
	}
	rr.r, rr.w, rr.pos = 0, 0, 0
	rr.giveBack()
	rr.buf = nil
	// The last commands' arguments point into the buffer: drop them, or
	// they keep it alive once the pool lets it go.
	if cap(rr.args) > 1024 {
		rr.args = nil
	} else {
		clear(rr.args[:cap(rr.args)])
	}
}

// giveBack returns a pooled buffer to its pool.
func (rr *RequestReader) giveBack() {
	switch {
	case rr.bufp == nil:
	case cap(*rr.bufp) == lentReadBuffer:
		readBuffers[0].Put(rr.bufp)
	default:
		readBuffers[1].Put(rr.bufp)
	}
	rr.bufp = nil
}

// Command is one parsed request. Args[0] is the command name as sent. Args and
// Raw point into the RequestReader's buffer and are valid only until the next
// call to ReadCommand; callers copy what they keep.
type Command struct {
	Args [][]byte
	// Raw is the command's bytes exactly as received when it came as multibulk
	// (forwardable verbatim); nil for inline commands, which callers re-encode.
	Raw []byte
}

// span locates one argument relative to the start of its command.
type span struct{ off, len int }

// RequestReader parses commands from one client connection. It is owned by
// that connection's reader goroutine and is not safe for concurrent use.
type RequestReader struct {
	rd    io.Reader
	ready ReadyReader // rd, when it is one: buf is lent only while it holds input
	lend  Lender
	lim   Limits
	buf   []byte
	bufp  *[]byte // buf came from readBuffers as this pointer (kept so that giving it back does not allocate)
	r     int     // start of the command being parsed
	w     int     // end of valid data

	// Parse state of the command at buf[r:], kept across reads so a large
	// command is not re-parsed from its start on every read.
	pos      int   // next byte to parse, absolute
	argc     int64 // arguments announced by the multibulk header; 0 = header not read
	bulkLen  int64 // length of the bulk whose header was read at pos, or -1
	spans    []span
	args     [][]byte
	inline   []byte // scratch for unescaped inline arguments
	inlineAt []span
}

// NewRequestReader returns a reader of commands from rd under lim. If rd
// is a ReadyReader, the reader holds a buffer only while it has input.
func NewRequestReader(rd io.Reader, lim Limits) *RequestReader {
	rr := &RequestReader{rd: rd, lim: lim.withDefaults(), bulkLen: -1}
	rr.ready, _ = rd.(ReadyReader)
	rr.lend.rr = rr
	return rr
}

// SetLimits replaces the reader's limits from the next command on. Call it
// only between commands.
func (rr *RequestReader) SetLimits(lim Limits) { rr.lim = lim.withDefaults() }

// Buffered reports how many received bytes are not yet consumed by
// ReadCommand: when it is zero, the next ReadCommand will block on the network.
func (rr *RequestReader) Buffered() int { return rr.w - rr.r }

// Detach returns the received bytes ReadCommand has not consumed, and
// forgets them: for a caller that stops parsing and takes the connection's
// byte stream over. The slice is the caller's until the next ReadCommand.
func (rr *RequestReader) Detach() []byte {
	b := rr.buf[rr.r:rr.w]
	rr.r, rr.w, rr.pos = 0, 0, 0
	rr.argc, rr.bulkLen, rr.spans = 0, -1, rr.spans[:0]
	return b
}

// ReadCommand returns the next non-empty command. Errors are either from the
// underlying reader, a *ProtocolError (reply with it, then close), or
// ErrTooLarge.
func (rr *RequestReader) ReadCommand() (Command, error) {
	for {
		cmd, done, err := rr.parse()
		if err != nil {
			return Command{}, err
		}
		if done {
			if len(cmd.Args) == 0 {
				continue // empty inline line or *0 / *-1: Redis ignores these
			}
			return cmd, nil
		}
		if err := rr.fill(); err != nil {
			return Command{}, err
		}
	}
}

// fill reads more bytes, compacting or growing the buffer as needed.
func (rr *RequestReader) fill() error {
	if rr.ready != nil && rr.r == rr.w {
		return rr.fillReady()
	}
	if rr.buf == nil {
		rr.buf = make([]byte, min(initialReadBuffer, rr.lim.MaxQueryBuffer))
	}
	if rr.r == rr.w && cap(rr.buf) > steadyReadBuffer*4 {
		rr.buf = make([]byte, steadyReadBuffer) // drop a buffer grown for one big command
		rr.r, rr.w, rr.pos = 0, 0, 0
	}
	if rr.w == len(rr.buf) {
		if rr.r > 0 {
			n := copy(rr.buf, rr.buf[rr.r:rr.w])
			rr.pos -= rr.r
			rr.r, rr.w = 0, n
		} else {
			if err := rr.grow(); err != nil {
				return err
			}
		}
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

// fillReady gives the buffer back while nothing is buffered and reads
// into a lent one once input is ready.
func (rr *RequestReader) fillReady() error {
	if rr.buf != nil {
		rr.lend.Release()
	}
	n, err := rr.ready.ReadReady(&rr.lend)
	rr.w += n
	if n > 0 {
		return nil
	}
	if rr.buf != nil {
		rr.lend.Release()
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (rr *RequestReader) grow() error {
	size := 2 * len(rr.buf)
	if size < steadyReadBuffer {
		size = steadyReadBuffer
	}
	// Doubling, not sizing to an announced bulk length: a client must send
	// the bytes before respguard holds memory for them (a 20-byte header
	// announcing 512 MB must not allocate 512 MB).
	if size > rr.lim.MaxQueryBuffer {
		size = rr.lim.MaxQueryBuffer
	}
	if size <= len(rr.buf) {
		return ErrTooLarge
	}
	var nb []byte
	var nbp *[]byte
	if rr.ready != nil && size == steadyReadBuffer {
		nbp = readBuffers[1].Get().(*[]byte)
		nb = *nbp
	} else {
		nb = make([]byte, size)
	}
	copy(nb, rr.buf[rr.r:rr.w])
	rr.giveBack()
	rr.bufp = nbp
	rr.pos -= rr.r
	rr.w -= rr.r
	rr.r = 0
	rr.buf = nb
	return nil
}

// parse tries to complete the command at buf[r:w]. done=false means more
// input is needed.
func (rr *RequestReader) parse() (cmd Command, done bool, err error) {
	if rr.r == rr.w {
		return Command{}, false, nil
	}
	if rr.argc == 0 && rr.buf[rr.r] != '*' {
		return rr.parseInline()
	}
	if rr.argc == 0 {
		n, ok, err := rr.readHeader('*', "mbulk")
		if err != nil || !ok {
			return Command{}, false, err
		}
		if n > rr.lim.MaxMultibulkLen || n > 1<<31-1 {
			return Command{}, false, protoErr("invalid multibulk length")
		}
		if n <= 0 {
			rr.consume()
			return Command{}, true, nil
		}
		rr.argc = n
	}
	for int64(len(rr.spans)) < rr.argc {
		if rr.bulkLen < 0 {
			n, ok, err := rr.readHeader('$', "bulk")
			if err != nil || !ok {
				return Command{}, false, err
			}
			if n < 0 || n > rr.lim.MaxBulkLen {
				return Command{}, false, protoErr("invalid bulk length")
			}
			if rr.lim.MaxArgBuffer > 0 && n+2 > rr.lim.MaxArgBuffer {
				return Command{}, false, ErrTooLarge
			}
			rr.bulkLen = n
		}
		if int64(rr.w-rr.pos) < rr.bulkLen+2 {
			return Command{}, false, nil
		}
		rr.spans = append(rr.spans, span{off: rr.pos - rr.r, len: int(rr.bulkLen)})
		rr.pos += int(rr.bulkLen) + 2 // like Redis, the CRLF after a bulk is skipped unchecked
		rr.bulkLen = -1
	}
	base := rr.buf[rr.r:rr.pos]
	rr.args = rr.args[:0]
	for _, s := range rr.spans {
		rr.args = append(rr.args, base[s.off:s.off+s.len:s.off+s.len])
	}
	rr.consume()
	return Command{Args: rr.args, Raw: base}, true, nil
}

// consume resets the parse state after a complete command ending at pos.
func (rr *RequestReader) consume() {
	rr.r = rr.pos
	rr.argc = 0
	rr.bulkLen = -1
	rr.spans = rr.spans[:0]
	if rr.r == rr.w {
		rr.r, rr.w, rr.pos = 0, 0, 0
	}
}

// readHeader parses "<prefix><int>\r\n" at pos the way Redis does, so that a
// Raw command forwarded verbatim frames identically upstream: the line ends
// at the first '\r', the byte after it is skipped unchecked, and the integer
// must be canonical (string2ll: no '+', no leading zeros, no "-0").
// ok=false means incomplete.
func (rr *RequestReader) readHeader(prefix byte, what string) (n int64, ok bool, err error) {
	cr := bytes.IndexByte(rr.buf[rr.pos:rr.w], '\r')
	// Redis checks the size only while no '\r' has arrived; checking the
	// line itself too makes the outcome independent of how reads split it.
	if cr > rr.lim.MaxInlineSize || cr < 0 && rr.w-rr.pos > rr.lim.MaxInlineSize {
		return 0, false, protoErr("too big %s count string", what)
	}
	if cr < 0 {
		return 0, false, nil
	}
	if cr+2 > rr.w-rr.pos {
		return 0, false, nil // the byte after '\r' has not arrived
	}
	if c := rr.buf[rr.pos]; c != prefix {
		return 0, false, protoErr("expected '%c', got '%c'", prefix, printable(c))
	}
	n, valid := ParseInt(rr.buf[rr.pos+1 : rr.pos+cr])
	if !valid {
		if prefix == '*' {
			return 0, false, protoErr("invalid multibulk length")
		}
		return 0, false, protoErr("invalid bulk length")
	}
	rr.pos += cr + 2
	return n, true, nil
}

// printable maps CR and LF to a space, as Redis does in error replies, so a
// ProtocolError can be sent as a one-line -ERR.
func printable(c byte) byte {
	if c == '\r' || c == '\n' {
		return ' '
	}
	return c
}

// parseInline parses one inline command line (what telnet and nc send).
func (rr *RequestReader) parseInline() (Command, bool, error) {
	nl := bytes.IndexByte(rr.buf[rr.r:rr.w], '\n')
	// As in readHeader, a complete line is held to the limit as well.
	if nl > rr.lim.MaxInlineSize || nl < 0 && rr.w-rr.r > rr.lim.MaxInlineSize {
		return Command{}, false, protoErr("too big inline request")
	}
	if nl < 0 {
		return Command{}, false, nil
	}
	line := rr.buf[rr.r : rr.r+nl]
	rr.pos = rr.r + nl + 1
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, err := rr.splitInline(line)
	rr.consume()
	if err != nil {
		return Command{}, false, err
	}
	return Command{Args: args}, true, nil
}
