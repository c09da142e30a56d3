package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/respguard/respguard/policy/guard"
)

// guardCollector exports the guard's big-key and hot-key tables and its
// probe counters at scrape time. Table entries are labelled by rank ("1" is
// the biggest or hottest), so the series are bounded by guard.top_k; key
// names become a "key" label only with telemetry.key_labels, because they
// are often ids or e-mail addresses and churn series (the admin endpoints
// /debug/bigkeys and /debug/hotkeys name them either way).
type guardCollector struct {
	current   func() *guard.Guard
	keyLabels bool

	bigElements, bigBytes, hotRate *prometheus.Desc
	probes, cacheHits              *prometheus.Desc
}

func newGuardCollector(current func() *guard.Guard, keyLabels bool) *guardCollector {
	labels := []string{"rank"}
	if keyLabels {
		labels = append(labels, "key")
	}
	return &guardCollector{
		current:   current,
		keyLabels: keyLabels,
		bigElements: prometheus.NewDesc("respguard_bigkey_elements",
			"Biggest keys seen (top guard.top_k, by rank), in elements.", labels, nil),
		bigBytes: prometheus.NewDesc("respguard_bigkey_reply_bytes",
			"Biggest replies seen per key (top guard.top_k, by rank), in bytes.", labels, nil),
		hotRate: prometheus.NewDesc("respguard_hotkey_requests_per_second",
			"Hottest keys (top guard.top_k, by rank), decayed request rate.", labels, nil),
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
	for i, k := range g.BigKeys() {
		ch <- c.ranked(c.bigElements, float64(k.Elements), i, k.Key)
	}
	for i, k := range g.BigKeysByBytes() {
		ch <- c.ranked(c.bigBytes, float64(k.Bytes), i, k.Key)
	}
	for i, k := range g.HotKeys() {
		ch <- c.ranked(c.hotRate, k.Rate, i, k.Key)
	}
	st := g.Stats()
	ch <- prometheus.MustNewConstMetric(c.probes, prometheus.CounterValue, float64(st.Probes))
	ch <- prometheus.MustNewConstMetric(c.cacheHits, prometheus.CounterValue, float64(st.CacheHits))
}

// ranked is the gauge of the i-th table entry (rank i+1).
func (c *guardCollector) ranked(d *prometheus.Desc, v float64, i int, key string) prometheus.Metric {
	rank := strconv.Itoa(i + 1)
	if c.keyLabels {
		return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, rank, key)
	}
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, rank)
}
