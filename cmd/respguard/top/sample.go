package top

import (
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Sample is one reading of a respguard's admin endpoint. Counters are
// totals since respguard started; rates come from two samples (see View).
type Sample struct {
	At       time.Time
	Commands map[string]*CommandStats // by lower-case command name

	Denials, GuardRejects, GuardRewrites float64
	Clients, Accepted, Rejected          float64
	Overflows, AuthFailures              float64
	InFlight                             float64 // NaN from a respguard that does not export it

	Upstream Upstream
	Redis    Redis // Redis.Known is false before respguard's first INFO scrape

	Slow    []SlowEntry // /debug/slowlog, newest first
	BigKeys []KeyStat   // /debug/bigkeys by elements, biggest first
	HotKeys []KeyStat   // /debug/hotkeys, hottest first
}

// CommandStats is one command's latency histogram and error count.
type CommandStats struct {
	Count   float64
	Buckets []Bucket // cumulative, by increasing upper bound (+Inf last)
	Errors  float64
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Upstream is respguard's side of its connections to Redis.
// Figures a respguard may not export (older versions) are NaN.
type Upstream struct {
	RedisUp      bool // respguard's last INFO scrape succeeded
	Shared       float64
	Dedicated    float64
	DedicatedMax float64
	Idle         float64
	DialErrors   float64
	Reconnects   float64
	BreakersOpen float64 // pools failing dials fast after a failure
}

// Redis is the upstream's INFO figures that the playbook watches.
type Redis struct {
	Known                   bool
	MemoryUsed, MemoryMax   float64
	Fragmentation           float64
	Hits, Misses, Evictions float64
	Clients, MaxClients     float64
	Blocked, RejectedConns  float64
}

// SlowEntry is one /debug/slowlog entry (the fields top shows).
type SlowEntry struct {
	Time      time.Time     `json:"time"`
	Duration  time.Duration `json:"duration_ns"`
	Command   string        `json:"command"`
	Statement string        `json:"statement"`
	User      string        `json:"user"`
}

// KeyStat is one /debug/bigkeys or /debug/hotkeys entry.
type KeyStat struct {
	Key      string  `json:"key"`
	Elements int64   `json:"elements"`
	Bytes    int64   `json:"bytes"`
	Rate     float64 `json:"rate"`
}

// addFamilies folds parsed /metrics families into s.
func (s *Sample) addFamilies(families map[string]*dto.MetricFamily) {
	s.Commands = map[string]*CommandStats{}
	s.InFlight, s.Upstream.Shared, s.Upstream.BreakersOpen = math.NaN(), math.NaN(), math.NaN()
	for name, mf := range families {
		if h, ok := histogramFamilies[name]; ok {
			h(s, mf)
			continue
		}
		for _, m := range mf.GetMetric() {
			if f, ok := valueFamilies[name]; ok {
				f(s, m, value(m))
			}
		}
	}
}

// value is a counter's, gauge's or untyped metric's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (s *Sample) command(name string) *CommandStats {
	c := s.Commands[name]
	if c == nil {
		c = &CommandStats{}
		s.Commands[name] = c
	}
	return c
}

var histogramFamilies = map[string]func(*Sample, *dto.MetricFamily){
	"respguard_command_duration_seconds": func(s *Sample, mf *dto.MetricFamily) {
		for _, m := range mf.GetMetric() {
			c := s.command(label(m, "command"))
			h := m.GetHistogram()
			c.Count = float64(h.GetSampleCount())
			c.Buckets = c.Buckets[:0]
			for _, b := range h.GetBucket() {
				c.Buckets = append(c.Buckets, Bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
			}
		}
	},
}

// valueFamilies maps each metric top reads to where it goes; metrics of a
// newer or older respguard that top does not know are ignored.
var valueFamilies = map[string]func(s *Sample, m *dto.Metric, v float64){
	"respguard_command_errors_total":             func(s *Sample, m *dto.Metric, v float64) { s.command(label(m, "command")).Errors += v },
	"respguard_policy_denials_total":             func(s *Sample, _ *dto.Metric, v float64) { s.Denials += v },
	"respguard_guard_actions_total":              guardAction,
	"respguard_clients_connected":                func(s *Sample, _ *dto.Metric, v float64) { s.Clients = v },
	"respguard_clients_accepted_total":           func(s *Sample, _ *dto.Metric, v float64) { s.Accepted = v },
	"respguard_clients_rejected_total":           func(s *Sample, _ *dto.Metric, v float64) { s.Rejected = v },
	"respguard_clients_output_overflows_total":   func(s *Sample, _ *dto.Metric, v float64) { s.Overflows = v },
	"respguard_auth_failures_total":              func(s *Sample, _ *dto.Metric, v float64) { s.AuthFailures = v },
	"respguard_redis_up":                         func(s *Sample, _ *dto.Metric, v float64) { s.Upstream.RedisUp = v == 1 },
	"respguard_pool_connections":                 poolConnections,
	"respguard_pool_connections_max":             func(s *Sample, _ *dto.Metric, v float64) { s.Upstream.DedicatedMax = v },
	"respguard_upstream_dial_errors_total":       func(s *Sample, _ *dto.Metric, v float64) { s.Upstream.DialErrors = v },
	"respguard_upstream_reconnects_total":        func(s *Sample, _ *dto.Metric, v float64) { s.Upstream.Reconnects = v },
	"respguard_upstream_breaker_open":            func(s *Sample, _ *dto.Metric, v float64) { s.Upstream.BreakersOpen = v },
	"respguard_upstream_connections":             sharedConnections,
	"respguard_commands_in_flight":               func(s *Sample, _ *dto.Metric, v float64) { s.InFlight = v },
	"respguard_redis_memory_used_bytes":          redisValue(func(r *Redis, v float64) { r.MemoryUsed = v }),
	"respguard_redis_memory_max_bytes":           redisValue(func(r *Redis, v float64) { r.MemoryMax = v }),
	"respguard_redis_memory_fragmentation_ratio": redisValue(func(r *Redis, v float64) { r.Fragmentation = v }),
	"respguard_redis_keyspace_hits_total":        redisValue(func(r *Redis, v float64) { r.Hits = v }),
	"respguard_redis_keyspace_misses_total":      redisValue(func(r *Redis, v float64) { r.Misses = v }),
	"respguard_redis_keys_evicted_total":         redisValue(func(r *Redis, v float64) { r.Evictions = v }),
	"respguard_redis_clients_connected":          redisValue(func(r *Redis, v float64) { r.Clients = v }),
	"respguard_redis_clients_max":                redisValue(func(r *Redis, v float64) { r.MaxClients = v }),
	"respguard_redis_clients_blocked":            redisValue(func(r *Redis, v float64) { r.Blocked = v }),
	"respguard_redis_connections_rejected_total": redisValue(func(r *Redis, v float64) { r.RejectedConns = v }),
}

func guardAction(s *Sample, m *dto.Metric, v float64) {
	switch label(m, "action") {
	case "reject":
		s.GuardRejects += v
	case "rewrite":
		s.GuardRewrites += v
	}
}

func poolConnections(s *Sample, m *dto.Metric, v float64) {
	s.Upstream.Dedicated += v
	if label(m, "state") == "idle" {
		s.Upstream.Idle += v
	}
}

// sharedConnections reads the multiplexed connections; the dedicated ones
// come from the pool's own gauges, which also give their states.
func sharedConnections(s *Sample, m *dto.Metric, v float64) {
	if label(m, "kind") == "shared" {
		s.Upstream.Shared = v
	}
}

func redisValue(set func(*Redis, float64)) func(*Sample, *dto.Metric, float64) {
	return func(s *Sample, _ *dto.Metric, v float64) {
		s.Redis.Known = true
		set(&s.Redis, v)
	}
}
