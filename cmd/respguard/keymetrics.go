package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/respguard/respguard/policy/guard"
)

// guardCollector exports the guard's big-key and hot-key tables and its
// probe counters at scrape time. The tables are bounded by guard.top_k, so
// the key label's cardinality is too.
type guardCollector struct {
	current func() *guard.Guard

	bigElements, bigBytes, hotRate *prometheus.Desc
	probes, cacheHits              *prometheus.Desc
}

func newGuardCollector(current func() *guard.Guard) *guardCollector {
	return &guardCollector{
		current: current,
		bigElements: prometheus.NewDesc("respguard_bigkey_elements",
			"Biggest keys seen in replies (top guard.top_k), by elements.", []string{"key"}, nil),
		bigBytes: prometheus.NewDesc("respguard_bigkey_reply_bytes",
			"Biggest replies seen per key (top guard.top_k), in bytes.", []string{"key"}, nil),
		hotRate: prometheus.NewDesc("respguard_hotkey_requests_per_second",
			"Hottest keys (top guard.top_k), decayed request rate.", []string{"key"}, nil),
		probes: prometheus.NewDesc("respguard_guard_probes_total",
			"Size probes sent to Redis before guarded reads (size cache misses).", nil, nil),
		cacheHits: prometheus.NewDesc("respguard_guard_size_cache_hits_total",
			"Guarded reads decided from the size cache, without a probe.", nil, nil),
	}
}

func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bigElements, c.bigBytes, c.hotRate, c.probes, c.cacheHits} {
		ch <- d
	}
}

func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.current()
	if g == nil {
		return
	}
	for _, k := range g.BigKeys() {
		ch <- prometheus.MustNewConstMetric(c.bigElements, prometheus.GaugeValue, float64(k.Elements), k.Key)
	}
	for _, k := range g.BigKeysByBytes() {
		ch <- prometheus.MustNewConstMetric(c.bigBytes, prometheus.GaugeValue, float64(k.Bytes), k.Key)
	}
	for _, k := range g.HotKeys() {
		ch <- prometheus.MustNewConstMetric(c.hotRate, prometheus.GaugeValue, k.Rate, k.Key)
	}
	st := g.Stats()
	ch <- prometheus.MustNewConstMetric(c.probes, prometheus.CounterValue, float64(st.Probes))
	ch <- prometheus.MustNewConstMetric(c.cacheHits, prometheus.CounterValue, float64(st.CacheHits))
}
