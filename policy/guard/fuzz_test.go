package guard

import (
	"bytes"
	"testing"
)

// FuzzPlan feeds arbitrary commands (arguments separated by NUL bytes) to
// Plan and Decide under a configuration that enables every rule: they must
// not panic, a Rewrite must carry a command, a Probe must carry probes that
// Decide accepts, and a Reject's text must fit on a RESP error line.
func FuzzPlan(f *testing.F) {
	for _, seed := range []string{
		"DEL\x00a\x00b", "HGETALL\x00h", "LRANGE\x00l\x00-9223372036854775808\x009223372036854775807",
		"ZRANGE\x00z\x00(1\x00+inf\x00BYSCORE\x00REV\x00LIMIT\x00-1\x00-1", "SORT\x00l\x00BY\x00nosort\x00LIMIT\x000\x0010",
		"XADD\x00events:1\x00NOMKSTREAM\x00LIMIT\x00*", "SET\x00sess:\r\n\x00v", "MSET\x00sess:1", "KEYS\x00*",
		"SUNIONSTORE\x00d\x00a\x00b", "XRANGE\x00s\x00-\x00+\x00COUNT\x00-5", "FLUSHALL",
	} {
		f.Add([]byte(seed), int64(20000))
	}
	g, err := New(Config{
		FlushAsync: true, MaxElements: 100,
		StreamMaxlen: []StreamMaxlen{{Pattern: "events:*", Maxlen: 10}},
		RequireTTL:   []string{"sess:*"},
	}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte, size int64) {
		args := bytes.Split(line, []byte{0})
		p := g.Plan(args, nil)
		switch p.Action {
		case Rewrite:
			if len(p.Args) == 0 {
				t.Fatal("empty rewrite")
			}
		case Reject:
			if p.Err == "" || bytes.ContainsAny([]byte(p.Err), "\r\n") {
				t.Fatalf("bad error line %q", p.Err)
			}
		case Probe:
			sizes := make([]int64, len(p.Probes))
			for i := range sizes {
				sizes[i] = size
			}
			d := g.Decide(args, sizes)
			if d.Action != Pass && d.Action != Reject || bytes.ContainsAny([]byte(d.Err), "\r\n") {
				t.Fatalf("Decide = %+v", d)
			}
		}
		g.Decide(args, []int64{size})
		if len(args) > 1 {
			g.Observe(string(bytes.ToLower(args[0])), args[1], size, int64(len(line)))
		}
	})
}
