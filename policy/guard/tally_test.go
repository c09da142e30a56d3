package guard

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTallyDecidesBatchByBatch(t *testing.T) {
	t.Run("a sum over the limit settles before the last batch", func(t *testing.T) {
		g := newGuard(t, Config{MaxElements: 100, SizeCacheTTL: time.Minute})
		tl := g.Tally(cmd("SUNION a b c d e"))
		if tl.Add([]int64{50, 40}) {
			t.Fatalf("settled after 90 of 100: %+v", tl.Plan())
		}
		if !tl.Add([]int64{20}) {
			t.Fatal("not settled after 110 of 100")
		}
		want := "ERR respguard: SUNION on 5 keys from 'a' would touch at least 110 members (limit 100); iterate with SSCAN"
		if p := tl.Plan(); p.Action != Reject || p.Err != want || p.Reason != ReasonOversize {
			t.Fatalf("Plan = %v %q\nwant reject %q", p.Action, p.Err, want)
		}
		if p := g.Plan(cmd("SMEMBERS c"), nil); p.Action != Pass {
			t.Fatalf("SMEMBERS c after its size 20 was probed = %v, want pass from the cache", p.Action)
		}
		if p := g.Plan(cmd("SMEMBERS d"), nil); p.Action != Probe {
			t.Fatalf("SMEMBERS d, never probed = %v, want probe", p.Action)
		}
	})
	t.Run("sizes within the limit settle with the last batch", func(t *testing.T) {
		g := newGuard(t, Config{MaxElements: 100})
		tl := g.Tally(cmd("SUNION a b c"))
		if tl.Add([]int64{50}) || tl.Add([]int64{0}) || !tl.Add([]int64{50}) || tl.Plan().Action != Pass {
			t.Fatalf("Plan = %+v, want pass at 100 of 100", tl.Plan())
		}
	})
	t.Run("an error Redis gives the command too passes it", func(t *testing.T) {
		g := newGuard(t, Config{MaxElements: 100})
		tl := g.Tally(cmd("SUNION a b c"))
		if !tl.Add([]int64{FailsToo, 500}) || tl.Plan().Action != Pass {
			t.Fatalf("Plan = %+v, want pass", tl.Plan())
		}
	})
	t.Run("more replies than probes pass the command", func(t *testing.T) {
		g := newGuard(t, Config{MaxElements: 100})
		tl := g.Tally(cmd("HGETALL h"))
		if !tl.Add([]int64{500, 500}) || tl.Plan().Action != Pass {
			t.Fatalf("Plan = %+v, want pass", tl.Plan())
		}
	})
}

func TestUncheckedReadsAreRefused(t *testing.T) {
	tests := []struct {
		cmd, why, want string
	}{
		{"HGETALL user:42", "LOADING Redis is loading the dataset in memory",
			"ERR respguard: HGETALL on 'user:42' refused: could not check the size (LOADING Redis is loading the dataset in memory)"},
		{"SUNION a b", "upstream unavailable: pool: upstream command timed out: no reply for 200ms",
			"ERR respguard: SUNION on 2 keys from 'a' refused: could not check the size (upstream unavailable: pool: upstream command timed out: no reply for 200ms)"},
		{"KEYS *", "a\r\nb", "ERR respguard: KEYS refused: could not check the size (a  b)"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			g := newGuard(t, Config{})
			tl := g.Tally(cmd(tt.cmd))
			if p := tl.Unchecked(tt.why); p.Action != Reject || p.Err != tt.want || p.Reason != ReasonUnchecked {
				t.Fatalf("Unchecked = %v %q %s\nwant reject %q", p.Action, p.Err, p.Reason, tt.want)
			}
		})
	}
	t.Run("audit forwards with the would-be error", func(t *testing.T) {
		g := newGuard(t, Config{Oversize: OversizeAudit})
		tl := g.Tally(cmd("HGETALL h"))
		if p := tl.Unchecked("timed out"); p.Action != Pass || !p.Audit || !strings.Contains(p.Err, "could not check the size") {
			t.Fatalf("Unchecked = %+v", p)
		}
	})
	t.Run("a settled tally keeps its decision", func(t *testing.T) {
		g := newGuard(t, Config{MaxElements: 10})
		tl := g.Tally(cmd("SUNION a b"))
		tl.Add([]int64{FailsToo})
		if p := tl.Unchecked("timed out"); p.Action != Pass {
			t.Fatalf("Unchecked after a FailsToo = %+v, want pass", p)
		}
	})
}

func TestErrorRepeats(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"WRONGTYPE Operation against a key holding the wrong kind of value", true},
		{"ERR min or max is not a float", true},
		{"ERR min or max not valid string range item", true},
		{"LOADING Redis is loading the dataset in memory", false},
		{"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", false},
		{"NOPERM this user has no permissions to run the 'hlen' command", false},
		{"MOVED 3999 127.0.0.1:6381", false},
		{"ERR upstream unavailable: pool: upstream connection closed", false},
		{"WRONGTYPEX", false},
	}
	for _, tt := range tests {
		if got := ErrorRepeats([]byte(tt.line + "\r\n")); got != tt.want {
			t.Errorf("ErrorRepeats(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestReadsOverMoreKeysThanTheLimitAreRefusedWithoutProbes(t *testing.T) {
	g := newGuard(t, Config{MaxElements: 100})
	keys := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, " k%d", i)
		}
		return b.String()
	}
	want := "ERR respguard: SUNION on 101 keys from 'k0' would look up 101 keys (limit 100); name fewer keys per command"
	if p := g.Plan(cmd("SUNION"+keys(101)), nil); p.Action != Reject || p.Err != want || len(p.Probes) != 0 {
		t.Fatalf("Plan = %v %q, %d probes\nwant reject %q", p.Action, p.Err, len(p.Probes), want)
	}
	if p := g.Plan(cmd("SINTERSTORE d"+keys(100)), nil); p.Action != Probe || len(p.Probes) != 100 {
		t.Fatalf("Plan = %v with %d probes, want 100 probes", p.Action, len(p.Probes))
	}
}
