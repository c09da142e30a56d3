package redistest

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"time"

	tidwall "github.com/tidwall/resp"
)

// Fill kinds: the collection types Fill builds.
const (
	KindList   = "list"
	KindHash   = "hash"
	KindSet    = "set"
	KindZSet   = "zset"
	KindStream = "stream"
)

// Fill sizes: each command adds fillChunk elements; fillBatch commands are
// written before their replies are read.
const (
	fillChunk = 1000
	fillBatch = 64
	// fillBatchTimeout bounds one batch (64k elements, tens of milliseconds
	// on an idle machine); it is generous because each batch is small work,
	// so it cannot race Redis's own progress the way one long script would.
	fillBatchTimeout = time.Minute
)

// Fill builds key in database db as a collection of kind (KindList...) with
// n elements "1".."n" (hash fields and values alike; zset members scored by
// their number; stream entries with field "f"). It sends variadic commands
// of up to 1000 elements, pipelined in batches, so no single command keeps
// Redis busy: a million elements take well under a second, and the next
// command of any client is not met by a still-running fixture. It fails the
// test on any error.
func (s *Server) Fill(db int, kind, key string, n int) {
	s.t.Helper()
	if err := fill(s.Addr, db, kind, key, n); err != nil {
		s.t.Fatalf("fill %s %s (%d elements): %v", kind, key, n, err)
	}
}

func fill(addr string, db int, kind, key string, n int) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	f := filler{conn: conn, w: bufio.NewWriter(conn), r: tidwall.NewReader(conn)}
	if err := f.command("SELECT", strconv.Itoa(db)); err != nil {
		return err
	}
	for i := 1; i <= n; {
		args, next, err := fillCommand(kind, key, i, n)
		if err != nil {
			return err
		}
		if err := f.command(args...); err != nil {
			return err
		}
		i = next
	}
	return f.flush()
}

// fillCommand returns the command adding elements from..(at most from+999)
// and the first element it leaves out.
func fillCommand(kind, key string, from, n int) ([]string, int, error) {
	if kind == KindStream {
		return []string{"XADD", key, "*", "f", strconv.Itoa(from)}, from + 1, nil
	}
	verb, perElement := map[string]string{KindList: "RPUSH", KindHash: "HSET", KindSet: "SADD", KindZSet: "ZADD"}[kind], 1
	if verb == "" {
		return nil, 0, fmt.Errorf("redistest: unknown kind %q", kind)
	}
	if kind == KindHash || kind == KindZSet {
		perElement = 2
	}
	to := min(from+fillChunk, n+1)
	args := make([]string, 0, 2+perElement*(to-from))
	args = append(args, verb, key)
	for j := from; j < to; j++ {
		v := strconv.Itoa(j)
		args = append(args, v)
		if perElement == 2 {
			args = append(args, v)
		}
	}
	return args, to, nil
}

// filler pipelines commands and checks their replies a batch at a time.
type filler struct {
	conn    net.Conn
	w       *bufio.Writer
	r       *tidwall.Reader
	pending int
}

func (f *filler) command(args ...string) error {
	if f.pending == 0 {
		_ = f.conn.SetDeadline(time.Now().Add(fillBatchTimeout))
	}
	if _, err := f.w.WriteString("*" + strconv.Itoa(len(args)) + "\r\n"); err != nil {
		return err
	}
	for _, a := range args {
		if _, err := f.w.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n"); err != nil {
			return err
		}
	}
	if f.pending++; f.pending >= fillBatch {
		return f.flush()
	}
	return nil
}

// flush writes the batch and reads its replies.
func (f *filler) flush() error {
	if err := f.w.Flush(); err != nil {
		return err
	}
	for ; f.pending > 0; f.pending-- {
		v, _, err := f.r.ReadValue()
		if err != nil {
			return err
		}
		if v.Type() == tidwall.Error {
			return &ReplyError{Msg: v.String()}
		}
	}
	return nil
}
