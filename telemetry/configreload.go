package telemetry

import (
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// configReloads counts configuration reloads; the fields are independent
// atomics written by the reload goroutine and read at scrape time.
type configReloads struct {
	success, failure atomic.Int64
	lastSuccess      atomic.Int64 // unix nanoseconds of the configuration in force; 0 = none recorded
}

// ConfigLoaded stamps the configuration loaded at start as the last
// successful load (it is not counted as a reload).
func (t *Telemetry) ConfigLoaded(at time.Time) { t.reloads.lastSuccess.Store(at.UnixNano()) }

// ConfigReloaded counts a reload attempt at time at; ok false means the
// new configuration was refused and the running one stays.
func (t *Telemetry) ConfigReloaded(ok bool, at time.Time) {
	if !ok {
		t.reloads.failure.Add(1)
		return
	}
	t.reloads.success.Add(1)
	t.reloads.lastSuccess.Store(at.UnixNano())
}

// configReloadInstruments are observed by the scrape callback.
type configReloadInstruments struct {
	total       metric.Int64ObservableCounter
	lastSuccess metric.Float64ObservableGauge
	success     metric.ObserveOption
	failure     metric.ObserveOption
}

func newConfigReloadInstruments(m metric.Meter, errs *errorList) configReloadInstruments {
	return configReloadInstruments{
		total: errs.counter(m.Int64ObservableCounter("respguard.config.reloads", metric.WithUnit("{reload}"),
			metric.WithDescription("Configuration reloads (file change or SIGHUP), by result: success, or failure (the running configuration stayed)."))),
		lastSuccess: errs.floatGauge(m.Float64ObservableGauge("respguard.config.last_reload_success_timestamp", metric.WithUnit("s"),
			metric.WithDescription("Unix time the configuration in force was loaded (at start or by the last successful reload)."))),
		success: metric.WithAttributes(attribute.String("result", "success")),
		failure: metric.WithAttributes(attribute.String("result", "failure")),
	}
}

func (in configReloadInstruments) list() []metric.Observable {
	return []metric.Observable{in.total, in.lastSuccess}
}

func (in configReloadInstruments) observe(o metric.Observer, r *configReloads) {
	o.ObserveInt64(in.total, r.success.Load(), in.success)
	o.ObserveInt64(in.total, r.failure.Load(), in.failure)
	if ns := r.lastSuccess.Load(); ns != 0 {
		o.ObserveFloat64(in.lastSuccess, float64(ns)/1e9)
	}
}
