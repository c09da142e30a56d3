package top

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func fetch(t *testing.T, src *Source) *Sample {
	t.Helper()
	s, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFetchReadsMetricsAndTables(t *testing.T) {
	admin := newFakeAdmin(t, 1000)
	s := fetch(t, NewSource(admin.srv.Listener.Addr().String()))
	if got := s.Commands["get"]; got == nil || got.Count != 1000 || len(got.Buckets) != 4 {
		t.Fatalf("get = %+v", got)
	}
	if s.Commands["hgetall"].Errors != 100 || s.Denials != 100 || s.GuardRejects != 100 || s.GuardRewrites != 100 {
		t.Errorf("errors/denials/guard = %v/%v/%v/%v", s.Commands["hgetall"].Errors, s.Denials, s.GuardRejects, s.GuardRewrites)
	}
	if s.Clients != 12 || s.Rejected != 3 || !s.Upstream.RedisUp || s.Upstream.Dedicated != 3 || s.Upstream.Idle != 2 || s.Upstream.DedicatedMax != 64 {
		t.Errorf("clients/upstream = %v %v %+v", s.Clients, s.Rejected, s.Upstream)
	}
	if s.Upstream.Shared != 1 || s.Upstream.BreakersOpen != 1 || s.InFlight != 5 {
		t.Errorf("shared %v, breakers open %v, in flight %v", s.Upstream.Shared, s.Upstream.BreakersOpen, s.InFlight)
	}
	if !s.Redis.Known || s.Redis.MemoryMax != 4e9 || s.Redis.Hits != 900 {
		t.Errorf("redis = %+v", s.Redis)
	}
	if len(s.Slow) != 2 || s.Slow[1].Duration != 90*time.Millisecond || s.Slow[1].Statement != "HGETALL big" {
		t.Errorf("slowlog = %+v", s.Slow)
	}
	if len(s.BigKeys) != 1 || s.BigKeys[0].Elements != 20000 || len(s.HotKeys) != 2 || s.HotKeys[0].Rate != 1234.5 {
		t.Errorf("keys = %+v %+v", s.BigKeys, s.HotKeys)
	}
}

func TestFetchReportsAnUnreachableAdmin(t *testing.T) {
	admin := newFakeAdmin(t, 0)
	addr := admin.srv.Listener.Addr().String()
	admin.srv.Close()
	if s, err := NewSource(addr).Fetch(context.Background()); s != nil || err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Fetch = %v, %v; want an error naming %s", s, err, addr)
	}
}

func TestRenderMarksFiguresAnOlderRespguardLacks(t *testing.T) {
	_, cur := twoSamples(t, 1000, 1000)
	text := strings.Join(Render(NewView("x", nil, cur, ByOps), 80, 24), "\n")
	if !strings.Contains(text, "breaker OPEN") || !strings.Contains(text, "shared conns 1") || !strings.Contains(text, "in flight 5") {
		t.Errorf("breaker, shared connections or in-flight missing:\n%s", text)
	}
	cur.Upstream.Shared, cur.Upstream.BreakersOpen, cur.InFlight = math.NaN(), math.NaN(), math.NaN()
	text = strings.Join(Render(NewView("x", nil, cur, ByOps), 80, 24), "\n")
	for _, want := range []string{"breaker -", "shared conns -", "in flight -"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q:\n%s", want, text)
		}
	}
}

func TestQuantileInterpolatesLikePrometheus(t *testing.T) {
	buckets := []Bucket{{0.001, 50}, {0.01, 90}, {0.1, 100}, {math.Inf(1), 100}}
	for _, c := range []struct {
		name string
		q    float64
		want float64
	}{
		{"the median is the top of the first bucket", 0.5, 0.001},
		{"p25 is half way into the first bucket", 0.25, 0.0005},
		{"p70 is half way into the second bucket", 0.7, 0.0055},
		{"p99 is 90% into the third bucket", 0.99, 0.01 + 0.09*0.9},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := quantile(c.q, buckets); math.Abs(got-c.want) > 1e-12 {
				t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
			}
		})
	}
	t.Run("ranks in the +Inf bucket give the highest finite bound", func(t *testing.T) {
		if got := quantile(0.99, []Bucket{{0.1, 1}, {math.Inf(1), 10}}); got != 0.1 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("no observations give NaN", func(t *testing.T) {
		if got := quantile(0.5, []Bucket{{0.1, 0}, {math.Inf(1), 0}}); !math.IsNaN(got) {
			t.Errorf("got %v", got)
		}
	})
}

// twoSamples fetches exposition(n1), then exposition(n2) one second later
// by the samples' clocks.
func twoSamples(t *testing.T, n1, n2 int) (*Sample, *Sample) {
	admin := newFakeAdmin(t, n1)
	src := NewSource(admin.srv.URL)
	prev := fetch(t, src)
	admin.set(n2, 0)
	cur := fetch(t, src)
	cur.At = prev.At.Add(time.Second)
	return prev, cur
}

func TestViewRatesAndPercentilesAreBetweenSamples(t *testing.T) {
	prev, cur := twoSamples(t, 1000, 3000) // +2000 get, +200 hgetall in 1s
	v := NewView("x", prev, cur, ByOps)
	if v.Ops != 2200 || v.Errors != 200 || v.Denials != 200 || v.GuardRejects != 200 || v.Accepted != 2000 {
		t.Fatalf("rates: ops %v errors %v denials %v guard %v accepted %v", v.Ops, v.Errors, v.Denials, v.GuardRejects, v.Accepted)
	}
	if names := rowNames(v); !slices.Equal(names, []string{"get", "hgetall"}) {
		t.Fatalf("rows by ops = %v", names)
	}
	get, hgetall := v.Commands[0], v.Commands[1]
	if get.P99 > 0.001 || hgetall.P50 < 0.01 || hgetall.P50 > 0.1 {
		t.Errorf("get p99 %v, hgetall p50 %v", get.P99, hgetall.P50)
	}
	// 2200 observations: 2000 under 1ms, 200 in (10ms, 100ms]; the overall
	// p99 has rank 2178, 178 into the slow bucket of 200.
	if want := 0.01 + 0.09*178/200; math.Abs(v.P99-want) > 1e-9 {
		t.Errorf("overall p99 = %v, want %v", v.P99, want)
	}
	if v.HitRatio != 0.9 {
		t.Errorf("hit ratio %v", v.HitRatio)
	}
}

func rowNames(v View) []string {
	var names []string
	for _, r := range v.Commands {
		names = append(names, r.Name)
	}
	return names
}

func TestViewSortKeys(t *testing.T) {
	prev, cur := twoSamples(t, 1000, 3000)
	for _, c := range []struct {
		sort SortKey
		want []string
	}{
		{ByOps, []string{"get", "hgetall"}},
		{ByP99, []string{"hgetall", "get"}},
		{ByErrors, []string{"hgetall", "get"}},
		{ByName, []string{"get", "hgetall"}},
	} {
		if got := rowNames(NewView("x", prev, cur, c.sort)); !slices.Equal(got, c.want) {
			t.Errorf("sorted by %s: %v, want %v", c.sort, got, c.want)
		}
	}
}

func TestViewTreatsACounterResetAsARestart(t *testing.T) {
	prev, cur := twoSamples(t, 5000, 1000) // respguard restarted and served 1000 gets since
	if v := NewView("x", prev, cur, ByOps); v.Commands[0].Ops != 1000 {
		t.Fatalf("after a reset: %v ops/s, want 1000", v.Commands[0].Ops)
	}
}

func TestViewWithoutAPreviousSampleHasNoRates(t *testing.T) {
	_, cur := twoSamples(t, 1000, 1000)
	v := NewView("x", nil, cur, ByOps)
	if v.Interval != 0 || len(v.Commands) != 0 || !math.IsNaN(v.P99) {
		t.Fatalf("first view: interval %v, %d rows, p99 %v", v.Interval, len(v.Commands), v.P99)
	}
	if !strings.Contains(strings.Join(Render(v, 80, 24), "\n"), "first sample") {
		t.Error("the first screen should say rates come with the next sample")
	}
}

// TestRenderFitsTheTerminal: whatever the data, the live view fits 80x24
// with the help line last, and --once lists every command.
func TestRenderFitsTheTerminal(t *testing.T) {
	prev, cur := twoSamples(t, 1000, 3000)
	for i := range 40 {
		name := strings.Repeat("x", i) + "cmd"
		cur.Commands[name] = &CommandStats{Count: 1e9, Errors: 1e9}
		cur.Clients, cur.Accepted, cur.Rejected, cur.Overflows, cur.AuthFailures = 1e5, 1e9, 1e6, 1e6, 1e6
		cur.Redis = Redis{Known: true, MemoryUsed: 1000 << 20, Fragmentation: 11.15, Hits: 1, Evictions: 1e9 - 1, Clients: 1e5, MaxClients: 1e5, Blocked: 1e5, RejectedConns: 1e9}
		cur.HotKeys = append(cur.HotKeys, KeyStat{Key: strings.Repeat("ключ", 20), Rate: 1e12})
		cur.BigKeys = append(cur.BigKeys, KeyStat{Key: name, Elements: 1 << 40})
		cur.Slow = append(cur.Slow, SlowEntry{Duration: time.Hour, Statement: strings.Repeat("HGETALL key ", 20)})
	}
	v := NewView("http://127.0.0.1:9180", prev, cur, ByOps)
	screen := Render(v, 80, 24)
	if len(screen) != 24 || screen[23] != Help {
		t.Fatalf("%d lines, last %q", len(screen), screen[len(screen)-1])
	}
	for k := range sortKeys {
		v.Sort = k
		for i, l := range Render(v, 0, 24) { // untruncated: only statements may need cutting
			if strings.Contains(l, " ago  ") {
				continue
			}
			if n := utf8.RuneCountInString(l); n > 80 || strings.HasPrefix(l, "COMMAND") && !strings.HasSuffix(l, "sort: "+k.String()) {
				t.Errorf("sorted by %s, line %d has %d runes: %q", k, i, n, l)
			}
		}
	}
	text := strings.Join(screen, "\n")
	for _, want := range []string{"COMMAND", "SLOWEST RECENT", "BIG KEYS", "HOT KEYS", "upstream: redis up", "redis: used 1000.0MiB / max NONE!"} {
		if !strings.Contains(text, want) {
			t.Errorf("screen lacks %q:\n%s", want, text)
		}
	}
	once := Render(v, 0, 0)
	if rows := len(v.Commands); rows != 42 || !slices.ContainsFunc(once, func(l string) bool { return strings.HasPrefix(l, strings.Repeat("x", 39)+"cmd") }) {
		t.Errorf("--once should list all %d commands:\n%s", rows, strings.Join(once, "\n"))
	}
}

func TestRenderGivesSpareRowsToTheTables(t *testing.T) {
	prev, cur := twoSamples(t, 1000, 3000) // two commands with traffic
	for i := range 20 {
		cur.Slow = append(cur.Slow, SlowEntry{Duration: time.Duration(i+1) * time.Millisecond, Statement: "GET k"})
		cur.HotKeys = append(cur.HotKeys, KeyStat{Key: "k", Rate: 1})
	}
	screen := Render(NewView("x", prev, cur, ByOps), 80, 24)
	if len(screen) != 24 || screen[22] == "" {
		t.Fatalf("rows left empty above the help line:\n%s", strings.Join(screen, "\n"))
	}
	if slow := strings.Count(strings.Join(screen, "\n"), " ago  "); slow <= 3 {
		t.Errorf("only %d slow log rows with room to spare", slow)
	}
}

func TestRenderFillsSmallTerminalsExactly(t *testing.T) {
	prev, cur := twoSamples(t, 1000, 3000)
	for _, h := range []int{1, 5, 12, 24, 50} {
		if got := Render(NewView("x", prev, cur, ByOps), 80, h); len(got) != h || got[h-1] != Help {
			t.Errorf("height %d: %d lines, last %q", h, len(got), got[len(got)-1])
		}
	}
}
