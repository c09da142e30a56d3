package proxy

import (
	"bytes"
	"errors"
	"testing"

	"github.com/respguard/respguard/proxy/resp"
)

var errTest = errors.New("test: connection cut")

func TestFanout(t *testing.T) {
	t.Run("parts held for merging count against the output limit as they arrive", func(t *testing.T) {
		o := newOutbox(&outputLimits{hard: 10})
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		f := newFanout(o, seq, 2, mergeSame)
		f.Deliver(0, make([]byte, 11), false)
		if !o.isOverflow() {
			t.Fatal("11 bytes of a part over a 10-byte limit did not close the client")
		}
		f.Deliver(0, []byte("+OK\r\n"), true) // later parts are dropped, not merged
		f.Deliver(1, []byte("+OK\r\n"), true)
	})
	t.Run("parts count on top of what the client's queue already holds", func(t *testing.T) {
		o := newOutbox(&outputLimits{hard: 8 << 10})
		first, _ := o.reserve(10, slotMeta{}, nil, nil)
		o.Deliver(first, make([]byte, 5<<10), true) // queued, not yet written
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		f := newFanout(o, seq, 2, mergeSame)
		f.Deliver(0, make([]byte, 4<<10), false)
		if !o.isOverflow() {
			t.Fatal("5 KB queued and a 4 KB part under an 8 KB limit did not close the client")
		}
	})
	t.Run("replies merge in the client's key order", func(t *testing.T) {
		o := newOutbox(&outputLimits{})
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		f := newFanout(o, seq, 2, mergeByPosition([][]int{{0, 2}, {1}}, 3))
		f.Deliver(1, []byte("*1\r\n$1\r\nb\r\n"), true)
		f.Deliver(0, []byte("*2\r\n$1\r\na\r\n$-1\r\n"), true)
		o.mu.Lock()
		got := string(o.ready.bytes())
		o.mu.Unlock()
		if want := "*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n"; got != want {
			t.Fatalf("merged %q, want %q", got, want)
		}
	})
	t.Run("a part cut off becomes an error reply", func(t *testing.T) {
		o := newOutbox(&outputLimits{})
		seq, _ := o.reserve(10, slotMeta{}, nil, nil)
		f := newFanout(o, seq, 2, mergeSum)
		f.Deliver(0, []byte(":1\r\n"), true)
		f.Deliver(1, []byte("*2\r\n"), false)
		f.Abort(errTest)
		o.mu.Lock()
		got := o.ready.bytes()
		o.mu.Unlock()
		if !bytes.HasPrefix(got, []byte("-ERR upstream unavailable")) {
			t.Fatalf("merged %q, want the cut-off part's error", got)
		}
	})
}

func TestScanCursor(t *testing.T) {
	for _, tc := range []struct {
		reply      string
		node, n    uint64
		wantCursor string
	}{
		{"*2\r\n$2\r\n17\r\n*0\r\n", 1, 3, "52"}, // 17*3+1
		{"*2\r\n$1\r\n0\r\n*0\r\n", 1, 3, "2"},   // node 1 done: node 2 from 0
		{"*2\r\n$1\r\n0\r\n*0\r\n", 2, 3, "0"},   // last node done: the scan ends
	} {
		got := scanReply([]byte(tc.reply), tc.node, tc.n)
		elems, ok := resp.Elements(got)
		if !ok || len(elems) != 2 {
			t.Fatalf("scanReply(%q) = %q", tc.reply, got)
		}
		if body, _ := bulkBody(elems[0]); string(body) != tc.wantCursor {
			t.Errorf("node %d of %d, node cursor in %q: client cursor %q, want %q", tc.node, tc.n, tc.reply, body, tc.wantCursor)
		}
	}
	if got := scanReply([]byte("*2\r\n$20\r\n18446744073709551615\r\n*0\r\n"), 1, 3); !bytes.HasPrefix(got, []byte("-ERR")) {
		t.Errorf("a node cursor too large to encode gave %q, want an error", got)
	}
}
