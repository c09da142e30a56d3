package telemetry

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// PoolStats is a snapshot of the upstream connection pool (the fields of
// puddle's Stat). The zero value is an empty pool.
type PoolStats struct {
	Total        int // dedicated connections open or being opened
	Idle         int // open and not in use
	Acquired     int // lent to a client session
	Constructing int // being dialed and set up
	Max          int // pool size limit
	Shared       int // shared (multiplexed) connections open, outside the pool's limit
	BreakersOpen int // upstream pools failing dials fast after a failure (0 or 1 per pool)

	DialErrors int64 // failed dials and handshakes, cumulative
	Reconnects int64 // connections re-established after a failure or an outage, cumulative

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
	upstream     metric.Int64ObservableGauge
	breakers     metric.Int64ObservableGauge
	dialErrors   metric.Int64ObservableCounter
	reconnects   metric.Int64ObservableCounter
	idle, inUse  metric.ObserveOption
	constructing metric.ObserveOption
	shared       metric.ObserveOption
	dedicated    metric.ObserveOption
}

func newPoolInstruments(m metric.Meter, err *errorList) poolInstruments {
	state := func(s string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("state", s)))
	}
	kind := func(k string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", k)))
	}
	p := poolInstruments{idle: state("idle"), inUse: state("acquired"), constructing: state("constructing"),
		shared: kind("shared"), dedicated: kind("dedicated")}
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
	p.upstream = err.gauge(m.Int64ObservableGauge("respguard.upstream.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Upstream connections open, by kind: shared (multiplexed, stateless commands) or dedicated (the pool's).")))
	p.breakers = err.gauge(m.Int64ObservableGauge("respguard.upstream.breaker.open", metric.WithUnit("{pool}"),
		metric.WithDescription("Upstream pools whose dials fail fast after a failure (1: Redis unreachable; per node in cluster mode).")))
	p.dialErrors = err.counter(m.Int64ObservableCounter("respguard.upstream.dial_errors", metric.WithUnit("{error}"),
		metric.WithDescription("Failed attempts to open a connection to Redis.")))
	p.reconnects = err.counter(m.Int64ObservableCounter("respguard.upstream.reconnects", metric.WithUnit("{connection}"),
		metric.WithDescription("Upstream connections re-established after a failure or an outage.")))
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
	o.ObserveInt64(p.upstream, int64(s.Shared), p.shared)
	o.ObserveInt64(p.upstream, int64(s.Total), p.dedicated)
	o.ObserveInt64(p.breakers, int64(s.BreakersOpen))
	o.ObserveInt64(p.dialErrors, s.DialErrors)
	o.ObserveInt64(p.reconnects, s.Reconnects)
}

func (p *poolInstruments) list() []metric.Observable {
	return []metric.Observable{p.conns, p.max, p.acquires, p.emptyAcq, p.canceledAcq, p.acquireWait,
		p.upstream, p.breakers, p.dialErrors, p.reconnects}
}
