package top

import (
	"fmt"
	"math"
	"time"
)

// Help is the key line the live view shows at the bottom.
const Help = "q quit  s next sort  o ops/s  p p99  e errors  n name"

// Render lays v out in lines of at most width runes (0: no limit). height
// 0 means no limit (--once: every command); otherwise the lines fill
// exactly height, the help line last.
func Render(v View, width, height int) []string {
	var b lines
	b.header(v)
	commands, slow, keys := len(v.Commands), 5, 10
	if height > 0 {
		// the header, a blank line and the three tables' titles, the help line
		commands, slow, keys = tableRows(v, height-len(b)-4-1)
	}
	b.commands(v, commands)
	b.slowest(v.Slowest, slow, v.At)
	b.keys(v.BigKeys, v.HotKeys, keys)
	if height > 0 {
		b = b[:min(len(b), height-1)]
		for len(b) < height-1 {
			b.add("")
		}
		b.add(Help)
	}
	return b.fit(width)
}

// tableRows shares room rows among the tables: up to 3 slow-log and 3 key
// rows, the rest for commands, and what commands leave to the other two.
func tableRows(v View, room int) (commands, slow, keys int) {
	slowRows, keyRows := len(v.Slowest), max(len(v.BigKeys), len(v.HotKeys))
	slow, keys = min(3, slowRows), min(3, keyRows)
	commands = min(len(v.Commands), max(0, room-slow-keys))
	slow += min(max(0, room-slow-keys-commands), slowRows-slow)
	keys += min(max(0, room-slow-keys-commands), keyRows-keys)
	return commands, slow, keys
}

type lines []string

func (b *lines) add(format string, a ...any) { *b = append(*b, fmt.Sprintf(format, a...)) }

func (b lines) fit(width int) []string {
	for i, l := range b {
		if r := []rune(l); width > 0 && len(r) > width {
			b[i] = string(r[:width])
		}
	}
	return b
}

func (b *lines) header(v View) {
	when := "first sample: rates from the next"
	if v.Interval > 0 {
		when = "every " + v.Interval.Round(10*time.Millisecond).String()
	}
	b.add("respguard top  %s  %s  %s", v.Admin, v.At.Format("15:04:05"), when)
	b.add("ops %s/s  p50 %s  p99 %s  errors %s/s  in flight %s",
		rate(v.Ops), seconds(v.P50), seconds(v.P99), rate(v.Errors), count(v.InFlight))
	b.add("clients %s (+%s/s)  refused %s  overflows %s  bad AUTH %s",
		count(v.Clients), rate(v.Accepted), count(v.Rejected), count(v.Overflows), count(v.AuthFailures))
	b.add("policy denied %s/s  guard refused %s/s  guard rewrote %s/s",
		rate(v.Denials), rate(v.GuardRejects), rate(v.GuardRewrites))
	u := v.Upstream
	b.add("upstream: %s  shared conns %s  dedicated conns %.0f/%.0f (%.0f idle)",
		upstreamState(u), count(u.Shared), u.Dedicated, u.DedicatedMax, u.Idle)
	b.add("upstream dials: %s failed  %s reconnects  breaker %s",
		count(u.DialErrors), count(u.Reconnects), breaker(u.BreakersOpen))
	r := v.Redis
	if !r.Known {
		b.add("redis: no INFO scraped yet")
		b.add("")
		return
	}
	b.add("redis: used %s / max %s  frag %.2f  hits %s  evicted %s",
		byteSize(r.MemoryUsed), maxmemory(r.MemoryMax), r.Fragmentation, percent(v.HitRatio), count(r.Evictions))
	b.add("redis: clients %s of %s  blocked %s  rejected connections %s",
		count(r.Clients), count(r.MaxClients), count(r.Blocked), count(r.RejectedConns))
}

func upstreamState(u Upstream) string {
	if u.RedisUp {
		return "redis up"
	}
	return "REDIS DOWN"
}

func breaker(open float64) string {
	switch {
	case math.IsNaN(open):
		return "-"
	case open > 0:
		return "OPEN"
	}
	return "closed"
}

func (b *lines) commands(v View, n int) {
	b.add("")
	b.add("%-20s %10s %10s %10s %10s  sort: %s", "COMMAND", "OPS/S", "P50", "P99", "ERR/S", v.Sort)
	for _, c := range v.Commands[:min(n, len(v.Commands))] {
		b.add("%-20s %10s %10s %10s %10s", c.Name, rate(c.Ops), seconds(c.P50), seconds(c.P99), rate(c.Errors))
	}
}

func (b *lines) slowest(entries []SlowEntry, n int, now time.Time) {
	b.add("SLOWEST RECENT (/debug/slowlog)")
	for _, e := range entries[:min(n, len(entries))] {
		b.add("%9s %8s ago  %-10s %s", seconds(e.Duration.Seconds()), age(now.Sub(e.Time)), e.User, e.Statement)
	}
}

func (b *lines) keys(big, hot []KeyStat, n int) {
	b.add("%-39s %s", "BIG KEYS (elements)", "HOT KEYS (requests/s)")
	for i := range min(n, max(len(big), len(hot))) {
		var left, right string
		if i < len(big) {
			left = fmt.Sprintf("%-28s %10s", clip(big[i].Key, 28), count(float64(big[i].Elements)))
		}
		if i < len(hot) {
			right = fmt.Sprintf("%-28s %10s", clip(hot[i].Key, 28), rate(hot[i].Rate))
		}
		b.add("%-39s %s", left, right)
	}
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// rate formats a per-second figure: one decimal below 1000, then compact.
func rate(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	if f < 1000 {
		return fmt.Sprintf("%.1f", f)
	}
	return count(f)
}

// count formats a total in at most 6 columns: 12345 is 12.3k.
func count(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	if f < 1e4 {
		return fmt.Sprintf("%.0f", f)
	}
	for _, u := range []struct {
		scale  float64
		suffix string
	}{{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}} {
		if f >= u.scale {
			return fmt.Sprintf("%.1f%s", f/u.scale, u.suffix)
		}
	}
	return fmt.Sprintf("%.1fk", f/1e3)
}

// seconds formats a latency: µs below a millisecond, ms below a second.
func seconds(s float64) string {
	switch {
	case math.IsNaN(s):
		return "-"
	case s < 1e-3:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.2fms", s*1e3)
	}
	return fmt.Sprintf("%.2fs", s)
}

func age(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func percent(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", f*100)
}

func byteSize(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0fB", n)
	}
	exp := int(math.Min(math.Floor(math.Log(n)/math.Log(unit)), 5))
	return fmt.Sprintf("%.1f%ciB", n/math.Pow(unit, float64(exp)), "KMGTP"[exp-1])
}

func maxmemory(n float64) string {
	if n == 0 {
		return "NONE!"
	}
	return byteSize(n)
}
