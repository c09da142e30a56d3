package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// infoState holds the last INFO scrape for the metrics callback.
type infoState struct {
	mu      sync.Mutex // guards the fields below
	started bool       // a scrape was attempted: export respguard_redis_up
	up      bool       // the last scrape succeeded; last is valid
	last    redisInfo
}

func (s *infoState) store(info redisInfo, up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started, s.up, s.last = true, up, info
}

func (s *infoState) load() (info redisInfo, up, started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.up, s.started
}

// ScrapeInfo starts a goroutine that calls fetch (which returns the text of
// Redis's INFO reply) now and then every interval, and exports the parsed
// fields as respguard_redis_* metrics. interval <= 0 means
// DefaultScrapeInterval. Each fetch gets a context that ends after interval.
// The goroutine stops when ctx is done or Shutdown is called; Shutdown
// waits for it. After a failed fetch only respguard_redis_up (0) is
// exported, not stale values.
func (t *Telemetry) ScrapeInfo(ctx context.Context, interval time.Duration, fetch func(ctx context.Context) (string, error)) {
	if interval <= 0 {
		interval = DefaultScrapeInterval
	}
	t.goWorker(ctx, func(ctx context.Context) {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			t.scrapeWithTimeout(ctx, interval, fetch)
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	})
}

// scrapeWithTimeout scrapes once and logs changes of state, not every
// attempt: the first failure (WARN), the recovery (INFO); failures in a row
// after the first are logged at debug level only.
func (t *Telemetry) scrapeWithTimeout(ctx context.Context, timeout time.Duration, fetch func(context.Context) (string, error)) {
	_, wasUp, started := t.info.load()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := t.ScrapeInfoOnce(sctx, fetch)
	switch {
	case ctx.Err() != nil: // stopping
	case err != nil && (wasUp || !started):
		t.logger.Warn("redis INFO scrape failed; upstream down or unreachable (logged again when it recovers)", "err", err)
	case err != nil:
		t.logger.Debug("redis INFO scrape failed again", "err", err)
	case started && !wasUp:
		t.logger.Info("redis INFO scrape succeeded again: upstream reachable")
	}
}

// ScrapeInfoOnce fetches and stores INFO once, synchronously; ScrapeInfo
// calls it on every tick. It returns fetch's error, wrapped.
func (t *Telemetry) ScrapeInfoOnce(ctx context.Context, fetch func(ctx context.Context) (string, error)) error {
	text, err := fetch(ctx)
	if err != nil {
		t.info.store(redisInfo{}, false)
		return fmt.Errorf("telemetry: fetch INFO: %w", err)
	}
	t.info.store(parseInfo(text), true)
	return nil
}

// infoInstruments are observed by the scrape callback from infoState.
type infoInstruments struct {
	gauges     map[string]metric.Float64ObservableGauge   // by INFO key
	counters   map[string]metric.Float64ObservableCounter // by INFO key
	up         metric.Int64ObservableGauge
	hitRatio   metric.Float64ObservableGauge
	replicaLag metric.Float64ObservableGauge
	replicaAck metric.Float64ObservableGauge
}

func newInfoInstruments(m metric.Meter, errs *errorList) infoInstruments {
	in := infoInstruments{
		gauges:   make(map[string]metric.Float64ObservableGauge),
		counters: make(map[string]metric.Float64ObservableCounter),
	}
	for _, f := range infoFields {
		unit, desc := metric.WithUnit(f.unit), metric.WithDescription(f.desc)
		if f.kind == infoCounter {
			in.counters[f.key] = errs.floatCounter(m.Float64ObservableCounter(f.name, unit, desc))
		} else {
			in.gauges[f.key] = errs.floatGauge(m.Float64ObservableGauge(f.name, unit, desc))
		}
	}
	in.up = errs.gauge(m.Int64ObservableGauge("respguard.redis.up",
		metric.WithDescription("1 if the last INFO scrape of the upstream Redis succeeded, else 0.")))
	in.hitRatio = errs.floatGauge(m.Float64ObservableGauge("respguard.redis.keyspace.hit", metric.WithUnit("1"),
		metric.WithDescription("keyspace_hits / (keyspace_hits + keyspace_misses) since Redis started.")))
	in.replicaLag = errs.floatGauge(m.Float64ObservableGauge("respguard.redis.replica.lag", metric.WithUnit("By"),
		metric.WithDescription("master_repl_offset minus the offset acknowledged by each replica.")))
	in.replicaAck = errs.floatGauge(m.Float64ObservableGauge("respguard.redis.replica.ack_age", metric.WithUnit("s"),
		metric.WithDescription("Seconds since each replica last acknowledged (INFO 'lag').")))
	return in
}

func (in *infoInstruments) list() []metric.Observable {
	list := []metric.Observable{in.up, in.hitRatio, in.replicaLag, in.replicaAck}
	for _, g := range in.gauges {
		list = append(list, g)
	}
	for _, c := range in.counters {
		list = append(list, c)
	}
	return list
}

func (in *infoInstruments) observe(o metric.Observer, s *infoState) {
	info, up, started := s.load()
	if !started {
		return
	}
	if !up {
		o.ObserveInt64(in.up, 0)
		return
	}
	o.ObserveInt64(in.up, 1)
	for key, v := range info.values {
		if g, ok := in.gauges[key]; ok {
			o.ObserveFloat64(g, v)
		} else if c, ok := in.counters[key]; ok {
			o.ObserveFloat64(c, v)
		}
	}
	if r, ok := info.hitRatio(); ok {
		o.ObserveFloat64(in.hitRatio, r)
	}
	in.observeReplicas(o, info)
}

func (in *infoInstruments) observeReplicas(o metric.Observer, info redisInfo) {
	primary, ok := info.values["master_repl_offset"]
	for _, r := range info.replicas {
		attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("replica", r.addr)))
		if ok {
			o.ObserveFloat64(in.replicaLag, primary-r.offset, attrs)
		}
		o.ObserveFloat64(in.replicaAck, r.lag, attrs)
	}
}
