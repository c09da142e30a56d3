package proxy

import (
	"strconv"
	"sync"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// fanout collects the replies to the parts of one client command sent to
// several cluster nodes, and hands the client one reply merged from them.
// It implements pool.Target for the parts (seq is the part's index); parts
// complete on different pipes' reader goroutines.
//
// The parts are held until the last one is in, so they count against the
// client's output buffer limit as they arrive, on top of what its queue
// holds: past it the client is closed at once, as it would be when the
// merged reply reached its queue.
type fanout struct {
	dst   *outbox
	seq   uint64
	merge func(parts [][]byte) []byte // runs once, when every part is in

	mu     sync.Mutex // guards the fields below
	parts  [][]byte
	left   int
	held   int // capacity of parts
	failed bool
}

func newFanout(dst *outbox, seq uint64, n int, merge func([][]byte) []byte) *fanout {
	return &fanout{dst: dst, seq: seq, merge: merge, parts: make([][]byte, n), left: n}
}

func (f *fanout) Deliver(i uint64, p []byte, last bool) {
	f.mu.Lock()
	if f.failed {
		f.mu.Unlock()
		return
	}
	before := cap(f.parts[i])
	f.parts[i] = append(f.parts[i], p...)
	if f.held += cap(f.parts[i]) - before; f.dst.limits.hard > 0 && f.held+f.dst.heldNow() > f.dst.limits.hard {
		f.failed, f.parts = true, nil
		f.mu.Unlock()
		f.dst.overflowNow()
		return
	}
	if last {
		f.left--
	}
	done := last && f.left == 0
	f.mu.Unlock()
	if done {
		f.dst.Deliver(f.seq, f.merge(f.parts), true)
	}
}

func (f *fanout) DeliverPush(p []byte, last bool) { f.dst.DeliverPush(p, last) }

// Abort: a part's reply was cut off. Nothing of it reached the client yet,
// so the part becomes an error reply instead.
func (f *fanout) Abort(err error) {
	f.mu.Lock()
	if f.failed {
		f.mu.Unlock()
		return
	}
	done := false
	for i, part := range f.parts {
		if len(part) > 0 && !complete(part) {
			f.parts[i] = pool.UnavailableReply(err)
			f.left--
			done = f.left == 0
			break
		}
	}
	f.mu.Unlock()
	if done {
		f.dst.Deliver(f.seq, f.merge(f.parts), true)
	}
}

func complete(part []byte) bool {
	n, ok := resp.ValueLen(part)
	return ok && n == len(part)
}

// firstError returns the first error reply among parts, or nil.
func firstError(parts [][]byte) []byte {
	for _, p := range parts {
		if len(p) > 0 && p[0] == '-' {
			return p
		}
	}
	return nil
}

// mergeSum adds the parts' integer replies (DEL, UNLINK, EXISTS, TOUCH, DBSIZE).
func mergeSum(parts [][]byte) []byte {
	if e := firstError(parts); e != nil {
		return e
	}
	var sum int64
	for _, p := range parts {
		kind, n, _, ok := resp.ReplyHeader(p)
		if !ok || kind != ':' {
			return resp.AppendError(nil, "ERR respguard: unexpected reply from a cluster node")
		}
		sum += n
	}
	return resp.AppendInt(nil, sum)
}

// mergeSame answers what every node answered alike (MSET's OK, FLUSHALL's
// OK, SCRIPT LOAD's SHA1), or the first error.
func mergeSame(parts [][]byte) []byte {
	if e := firstError(parts); e != nil {
		return e
	}
	return parts[0]
}

// mergeConcat joins the parts' arrays into one (KEYS).
func mergeConcat(parts [][]byte) []byte {
	if e := firstError(parts); e != nil {
		return e
	}
	var total int64
	var body []byte
	for _, p := range parts {
		kind, n, next, ok := resp.ReplyHeader(p)
		if !ok || (kind != '*' && kind != '~') || n < 0 {
			return resp.AppendError(nil, "ERR respguard: unexpected reply from a cluster node")
		}
		total += n
		body = append(body, p[next:]...)
	}
	out := append([]byte{'*'}, strconv.FormatInt(total, 10)...)
	return append(append(out, '\r', '\n'), body...)
}

// mergeByPosition rebuilds an array reply in the client's key order (MGET):
// part i's elements belong at positions[i].
func mergeByPosition(positions [][]int, total int) func([][]byte) []byte {
	return func(parts [][]byte) []byte {
		if e := firstError(parts); e != nil {
			return e
		}
		elems := make([][]byte, total)
		for i, p := range parts {
			got, ok := resp.Elements(p)
			if !ok || len(got) != len(positions[i]) {
				return resp.AppendError(nil, "ERR respguard: unexpected reply from a cluster node")
			}
			for j, pos := range positions[i] {
				elems[pos] = got[j]
			}
		}
		out := resp.AppendArray(nil, total)
		for _, e := range elems {
			out = append(out, e...)
		}
		return out
	}
}
