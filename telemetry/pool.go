package telemetry

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// PoolStats is a snapshot of the upstream connection pool (the fields of
// puddle's Stat). The zero value is an empty pool.
type PoolStats struct {
	Total        int // connections open or being opened
	Idle         int // open and not in use
	Acquired     int // lent to a client session
	Constructing int // being dialed and set up
	Max          int // pool size limit

	AcquireCount         int64         // successful acquires, cumulative
	EmptyAcquireCount    int64         // acquires that had to wait or dial, cumulative
	CanceledAcquireCount int64         // acquires abandoned by their context, cumulative
	AcquireWait          time.Duration // total time spent waiting in Acquire, cumulative
}

// ObservePool makes the pool metrics and the INFO section read f at scrape
// time. f must be safe to call from any goroutine and quick (it runs under
// the metrics scrape); nil stops pool reporting. A later call replaces f.
func (t *Telemetry) ObservePool(f func() PoolStats) {
	if f == nil {
		t.pool.Store(nil)
		return
	}
	t.pool.Store(&f)
}

// poolStats returns the current pool snapshot and whether a pool is observed.
func (t *Telemetry) poolStats() (PoolStats, bool) {
	f := t.pool.Load()
	if f == nil {
		return PoolStats{}, false
	}
	return (*f)(), true
}

// poolInstruments are observed by the scrape callback.
type poolInstruments struct {
	conns        metric.Int64ObservableGauge
	max          metric.Int64ObservableGauge
	acquires     metric.Int64ObservableCounter
	emptyAcq     metric.Int64ObservableCounter
	canceledAcq  metric.Int64ObservableCounter
	acquireWait  metric.Float64ObservableCounter
	idle, inUse  metric.ObserveOption
	constructing metric.ObserveOption
}

func newPoolInstruments(m metric.Meter, err *errorList) poolInstruments {
	state := func(s string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("state", s)))
	}
	p := poolInstruments{idle: state("idle"), inUse: state("acquired"), constructing: state("constructing")}
	p.conns = err.gauge(m.Int64ObservableGauge("respguard.pool.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Upstream pool connections by state (idle, acquired, constructing); their sum is the pool total.")))
	p.max = err.gauge(m.Int64ObservableGauge("respguard.pool.connections.max", metric.WithUnit("{connection}"),
		metric.WithDescription("Upstream pool size limit.")))
	p.acquires = err.counter(m.Int64ObservableCounter("respguard.pool.acquires", metric.WithUnit("{acquire}"),
		metric.WithDescription("Successful pool acquires.")))
	p.emptyAcq = err.counter(m.Int64ObservableCounter("respguard.pool.empty_acquires", metric.WithUnit("{acquire}"),
		metric.WithDescription("Acquires that found no idle connection and had to wait or dial.")))
	p.canceledAcq = err.counter(m.Int64ObservableCounter("respguard.pool.canceled_acquires", metric.WithUnit("{acquire}"),
		metric.WithDescription("Acquires abandoned because their context ended.")))
	p.acquireWait = err.floatCounter(m.Float64ObservableCounter("respguard.pool.acquire_wait", metric.WithUnit("s"),
		metric.WithDescription("Total time spent waiting to acquire a pool connection.")))
	return p
}

func (p *poolInstruments) observe(o metric.Observer, s PoolStats) {
	o.ObserveInt64(p.conns, int64(s.Idle), p.idle)
	o.ObserveInt64(p.conns, int64(s.Acquired), p.inUse)
	o.ObserveInt64(p.conns, int64(s.Constructing), p.constructing)
	o.ObserveInt64(p.max, int64(s.Max))
	o.ObserveInt64(p.acquires, s.AcquireCount)
	o.ObserveInt64(p.emptyAcq, s.EmptyAcquireCount)
	o.ObserveInt64(p.canceledAcq, s.CanceledAcquireCount)
	o.ObserveFloat64(p.acquireWait, s.AcquireWait.Seconds())
}

func (p *poolInstruments) list() []metric.Observable {
	return []metric.Observable{p.conns, p.max, p.acquires, p.emptyAcq, p.canceledAcq, p.acquireWait}
}
