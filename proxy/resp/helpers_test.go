package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing/iotest"
)

// splitters feed the same input to a reader in differently sized reads.
var splitters = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one byte at a time", iotest.OneByteReader},
	{"half of each read", iotest.HalfReader},
	{"data with EOF", iotest.DataErrReader},
	{"lent buffers", func(r io.Reader) io.Reader { return &readyReader{rd: r} }},
	{"lent buffers, one byte at a time", func(r io.Reader) io.Reader { return &readyReader{rd: iotest.OneByteReader(r)} }},
}

// readyReader is a ReadyReader over rd. Every other wait finds nothing at
// first (a spurious wake-up: the buffer taken is given back), and each
// checks that the RequestReader gave its buffer back before waiting.
type readyReader struct {
	rd    io.Reader
	waits int
}

func (r *readyReader) Read(p []byte) (int, error) { return r.rd.Read(p) }

func (r *readyReader) ReadReady(b *Lender) (int, error) {
	if b.rr.buf != nil || b.rr.r != b.rr.w {
		panic("waiting for input while holding a buffer")
	}
	r.waits++
	if r.waits%2 == 0 {
		b.Take()
		b.Release()
	}
	return r.rd.Read(b.Take())
}

// parsed is everything a RequestReader made of an input: the commands in
// order, then the error that stopped it ("EOF" at a clean end).
type parsed struct {
	cmds [][]string
	raws []string // Raw of each command; "<inline>" when nil
	err  string
}

func (p parsed) String() string {
	return fmt.Sprintf("cmds=%q raws=%q err=%q", p.cmds, p.raws, p.err)
}

// errText names an error for comparison: a ProtocolError by its Redis text,
// the sentinel errors by name.
func errText(err error) string {
	var pe *ProtocolError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &pe):
		return pe.Error()
	case errors.Is(err, ErrTooLarge):
		return "ErrTooLarge"
	case errors.Is(err, io.EOF):
		return "EOF"
	default:
		return err.Error()
	}
}

// parseAll reads commands from rd until an error, copying each one.
func parseAll(rd io.Reader, lim Limits) parsed {
	rr := NewRequestReader(rd, lim)
	var p parsed
	for {
		cmd, err := rr.ReadCommand()
		if err != nil {
			p.err = errText(err)
			return p
		}
		args := make([]string, len(cmd.Args))
		for i, a := range cmd.Args {
			args[i] = string(a)
		}
		p.cmds = append(p.cmds, args)
		if cmd.Raw == nil {
			p.raws = append(p.raws, "<inline>")
		} else {
			p.raws = append(p.raws, string(cmd.Raw))
		}
	}
}

// cmd builds the expected args of one command from a space-separated list;
// use args() when an argument holds spaces.
func cmd(s string) []string { return strings.Fields(s) }

func args(a ...string) []string { return a }

func mb(a ...string) string { return string(AppendCommandStrings(nil, a...)) }

// sinkRecorder is a Sink that keeps every chunk it is handed.
type sinkRecorder struct {
	data     bytes.Buffer
	chunks   int
	maxChunk int
	lasts    int  // chunks with last=true
	lastSeen bool // the final chunk had last=true
	empty    int  // zero-length chunks
}

func (s *sinkRecorder) WriteReply(p []byte, last bool) {
	s.data.Write(p)
	s.chunks++
	s.maxChunk = max(s.maxChunk, len(p))
	if last {
		s.lasts++
	}
	if len(p) == 0 {
		s.empty++
	}
	s.lastSeen = last
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// repeatReader returns its data over and over, never EOF.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}
