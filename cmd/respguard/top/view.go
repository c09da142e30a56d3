package top

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// SortKey orders the command table.
type SortKey int

// The command table's orders, cycled by the s key.
const (
	ByOps SortKey = iota
	ByP99
	ByErrors
	ByName
	sortKeys
)

func (k SortKey) String() string {
	return [...]string{"ops/s", "p99", "errors", "name"}[k]
}

func (k SortKey) next() SortKey { return (k + 1) % sortKeys }

// View is what one screen shows: rates and percentiles between two samples.
type View struct {
	Admin    string
	At       time.Time
	Interval time.Duration // between the samples; 0 on the first (no rates yet)
	Sort     SortKey

	Ops, P50, P99, Errors float64 // all commands; per second and seconds
	Commands              []CommandRow

	Denials, GuardRejects, GuardRewrites float64 // per second
	Clients, Accepted                    float64 // open now; accepted per second
	Rejected, Overflows, AuthFailures    float64 // totals
	InFlight                             float64 // NaN if not exported

	Upstream Upstream
	Redis    Redis
	HitRatio float64 // since Redis started; NaN without lookups

	Slowest []SlowEntry // the slow log, slowest first
	BigKeys []KeyStat
	HotKeys []KeyStat
}

// CommandRow is one line of the command table.
type CommandRow struct {
	Name                  string
	Ops, P50, P99, Errors float64
}

// NewView compares cur with prev (nil for the first sample).
func NewView(admin string, prev, cur *Sample, sort SortKey) View {
	v := View{
		Admin: admin, At: cur.At, Sort: sort,
		Clients: cur.Clients, InFlight: cur.InFlight, Rejected: cur.Rejected, Overflows: cur.Overflows, AuthFailures: cur.AuthFailures,
		Upstream: cur.Upstream, Redis: cur.Redis,
		HitRatio: cur.Redis.Hits / (cur.Redis.Hits + cur.Redis.Misses),
		BigKeys:  cur.BigKeys, HotKeys: cur.HotKeys,
		P50: math.NaN(), P99: math.NaN(),
	}
	v.Slowest = slices.Clone(cur.Slow)
	slices.SortStableFunc(v.Slowest, func(a, b SlowEntry) int { return cmp.Compare(b.Duration, a.Duration) })
	if prev == nil || !cur.At.After(prev.At) {
		return v
	}
	v.Interval = cur.At.Sub(prev.At)
	v.Denials = v.perSecond(cur.Denials, prev.Denials)
	v.GuardRejects = v.perSecond(cur.GuardRejects, prev.GuardRejects)
	v.GuardRewrites = v.perSecond(cur.GuardRewrites, prev.GuardRewrites)
	v.Accepted = v.perSecond(cur.Accepted, prev.Accepted)
	v.addCommands(prev, cur)
	slices.SortFunc(v.Commands, rowOrder(sort))
	return v
}

func (v *View) perSecond(cur, prev float64) float64 { return delta(cur, prev) / v.Interval.Seconds() }

// addCommands fills the command table (commands with traffic in the
// interval) and the totals over every command.
func (v *View) addCommands(prev, cur *Sample) {
	all := map[float64]float64{} // upper bound -> count in the interval, over every command
	for name, c := range cur.Commands {
		p := prev.Commands[name]
		if p == nil {
			p = &CommandStats{}
		}
		buckets := deltaBuckets(c.Buckets, p.Buckets)
		for _, b := range buckets {
			all[b.UpperBound] += b.Count
		}
		row := CommandRow{Name: name, Ops: v.perSecond(c.Count, p.Count), Errors: v.perSecond(c.Errors, p.Errors),
			P50: quantile(0.5, buckets), P99: quantile(0.99, buckets)}
		v.Ops += row.Ops
		v.Errors += row.Errors
		if row.Ops > 0 || row.Errors > 0 {
			v.Commands = append(v.Commands, row)
		}
	}
	v.P50, v.P99 = quantile(0.5, merged(all)), quantile(0.99, merged(all))
}

// delta is a counter's increase; a counter that went down was reset (a
// restarted respguard), so all of cur is new.
func delta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func deltaBuckets(cur, prev []Bucket) []Bucket {
	out := make([]Bucket, len(cur))
	for i, b := range cur {
		var p float64
		if i < len(prev) && prev[i].UpperBound == b.UpperBound {
			p = prev[i].Count
		}
		out[i] = Bucket{b.UpperBound, delta(b.Count, p)}
	}
	return out
}

func merged(byBound map[float64]float64) []Bucket {
	out := make([]Bucket, 0, len(byBound))
	for ub, n := range byBound {
		out = append(out, Bucket{ub, n})
	}
	slices.SortFunc(out, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	return out
}

// quantile estimates the q-quantile from cumulative buckets as Prometheus's
// histogram_quantile does: linear interpolation inside the bucket holding
// the rank, the highest finite bound for the +Inf bucket, NaN if empty.
func quantile(q float64, buckets []Bucket) float64 {
	if len(buckets) == 0 || buckets[len(buckets)-1].Count == 0 {
		return math.NaN()
	}
	rank := q * buckets[len(buckets)-1].Count
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return lower
			}
			if b.Count == below {
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below)
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower
}

func rowOrder(k SortKey) func(a, b CommandRow) int {
	byName := func(a, b CommandRow) int { return cmp.Compare(a.Name, b.Name) }
	desc := func(f func(CommandRow) float64) func(a, b CommandRow) int {
		return func(a, b CommandRow) int { return cmp.Or(cmp.Compare(f(b), f(a)), byName(a, b)) }
	}
	switch k {
	case ByP99:
		return desc(func(r CommandRow) float64 { return nanToZero(r.P99) })
	case ByErrors:
		return desc(func(r CommandRow) float64 { return r.Errors })
	case ByName:
		return byName
	}
	return desc(func(r CommandRow) float64 { return r.Ops })
}

func nanToZero(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return f
}
