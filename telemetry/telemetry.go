package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ErrShutdown is returned by Shutdown when called more than once.
var ErrShutdown = errors.New("telemetry: already shut down")

// Options are the injected dependencies of New. The zero value means: build
// providers from Config and serve a fresh Prometheus registry.
type Options struct {
	// TracerProvider receives respguard's spans; Telemetry does not shut it
	// down. nil means build one from Config.Traces (none if its exporter
	// is "none"). When set, tracing is on with Config's sampling rules.
	TracerProvider trace.TracerProvider
	// MeterProvider receives respguard's metrics; Telemetry does not shut it
	// down, and /metrics then serves only what the caller wired into
	// Registry. nil means an SDK MeterProvider exporting into Registry.
	MeterProvider metric.MeterProvider
	// Registry is what /metrics serves. nil means a new registry with the
	// Go runtime and process collectors. When New builds the MeterProvider
	// it registers its exporter here, so one Registry serves one Telemetry.
	Registry *prometheus.Registry
	// Logger receives telemetry's own warnings (exporter set-up, INFO
	// scrape failures). nil means discard.
	Logger *slog.Logger
}

// Telemetry records commands into metrics, spans and the slow log, and
// serves the admin endpoints. Create it with New; all methods are safe for
// concurrent use. Callers must call Shutdown to flush spans and stop the
// INFO scraper.
type Telemetry struct {
	// Immutable after New.
	logger           *slog.Logger
	registry         *prometheus.Registry
	mode             StatementMode
	statementWanted  bool
	slowlogOn        bool
	slowlogThreshold time.Duration
	sampler          sampler
	inst             instruments
	ownHistograms    bool // latency histograms are commandMetrics', exported by latencyProducer
	poolInst         poolInstruments
	infoInst         infoInstruments
	reloadInst       configReloadInstruments
	commands         *labelCache[string, *commandMetrics]
	denials          *labelCache[labelPair, []metric.AddOption]
	guards           *labelCache[labelPair, []metric.AddOption]
	counterObs       [numCounters]metric.Int64ObservableCounter // only where counterSpecs names one
	connectedObs     metric.Int64ObservableGauge
	registration     metric.Registration
	ownTracer        interface{ Shutdown(context.Context) error } // nil when injected or off
	ownMeter         *sdkmetric.MeterProvider                     // nil when injected

	// Internally synchronized.
	counts   counts
	slowlog  *slowlog
	info     infoState
	reloads  configReloads
	pool     atomic.Pointer[func() PoolStats]
	inFlight gaugeSource // see ObserveInFlight
	parked   gaugeSource // see ObserveParked

	workersMu sync.Mutex         // guards stopped and workers.Add
	stopped   bool               // Shutdown has begun
	stopCtx   context.Context    // cancelled by Shutdown
	stopAll   context.CancelFunc // cancels stopCtx
	workers   sync.WaitGroup     // background goroutines (INFO scraper)
}

// New validates cfg, applies defaults and the standard OTEL_* environment
// variables, and builds what opts does not inject. The caller owns the
// result and must call Shutdown.
func New(ctx context.Context, cfg Config, opts Options) (*Telemetry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	settings, warnings := resolveTraces(cfg.Traces, os.Getenv)
	t := &Telemetry{
		logger:           opts.Logger,
		registry:         opts.Registry,
		mode:             settings.Statement,
		slowlogOn:        cfg.Slowlog.Threshold > 0,
		slowlogThreshold: cfg.Slowlog.Threshold,
		slowlog:          newSlowlog(cfg.Slowlog.MaxLen),
		commands:         newCommandCache(),
		denials:          newPairCache("command", "reason"),
		guards:           newPairCache("action", "reason"),
	}
	t.stopCtx, t.stopAll = context.WithCancel(context.Background())
	t.defaults()
	for _, w := range warnings {
		t.logger.Warn("ignoring OpenTelemetry environment variable", "err", w)
	}
	res := newResource(ctx, settings.ServiceName, t.logger)
	if err := t.setupTracing(ctx, settings, opts.TracerProvider, res); err != nil {
		return nil, err
	}
	if err := t.setupMetrics(opts.MeterProvider, res); err != nil {
		_ = t.shutdownProviders(ctx)
		return nil, err
	}
	t.statementWanted = t.mode != StatementNone && (t.sampler.tracer != nil || t.slowlogOn)
	return t, nil
}

func (t *Telemetry) defaults() {
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	if t.registry == nil {
		t.registry = prometheus.NewRegistry()
		t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
}

// newResource describes this process: service.name from config, then
// OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, which win.
func newResource(ctx context.Context, serviceName string, logger *slog.Logger) *resource.Resource {
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(serviceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		logger.Warn("incomplete OpenTelemetry resource", "err", err)
	}
	return res
}

func (t *Telemetry) setupTracing(ctx context.Context, s traceSettings, tp trace.TracerProvider, res *resource.Resource) error {
	if tp == nil {
		own, err := newTracerProvider(ctx, s, res)
		if err != nil {
			return err
		}
		if own == nil {
			return nil // exporter "none": tracing off
		}
		t.ownTracer, tp = own, own
	}
	t.sampler = newSampler(tp.Tracer(meterName), s)
	return nil
}

func (t *Telemetry) setupMetrics(mp metric.MeterProvider, res *resource.Resource) error {
	if mp == nil {
		// The latency histograms are recorded per command on the hot path:
		// respguard's own lock-free ones, handed to the exporter at scrape
		// time, cost a tenth of the SDK's. An injected provider gets OTel
		// instruments instead.
		t.ownHistograms = true
		exp, err := otelprom.New(
			otelprom.WithRegisterer(t.registry),
			otelprom.WithoutScopeInfo(),
			otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
			otelprom.WithProducer(latencyProducer{t: t, start: time.Now()}),
		)
		if err != nil {
			return fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		t.ownMeter = sdkmetric.NewMeterProvider(
			sdkmetric.WithReader(exp),
			sdkmetric.WithResource(res),
			sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
		)
		mp = t.ownMeter
	}
	return t.newMetrics(mp.Meter(meterName))
}

// newMetrics creates every instrument and registers the scrape callback.
func (t *Telemetry) newMetrics(m metric.Meter) error {
	var err error
	if t.inst, err = newInstruments(m, t.ownHistograms); err != nil {
		return err
	}
	errs := &errorList{}
	observables := t.newCounterObservables(m, errs)
	t.poolInst = newPoolInstruments(m, errs)
	t.infoInst = newInfoInstruments(m, errs)
	t.reloadInst = newConfigReloadInstruments(m, errs)
	t.newSourceGauges(m, errs)
	if errs.err != nil {
		return fmt.Errorf("telemetry: create instruments: %w", errs.err)
	}
	observables = append(observables, t.poolInst.list()...)
	observables = append(observables, t.infoInst.list()...)
	observables = append(observables, t.reloadInst.list()...)
	t.registration, err = m.RegisterCallback(t.observe, observables...)
	if err != nil {
		return fmt.Errorf("telemetry: register metrics callback: %w", err)
	}
	return nil
}

func (t *Telemetry) newCounterObservables(m metric.Meter, errs *errorList) []metric.Observable {
	var list []metric.Observable
	for id, spec := range counterSpecs {
		if spec.name == "" {
			continue
		}
		t.counterObs[id] = errs.counter(m.Int64ObservableCounter(spec.name,
			metric.WithUnit(spec.unit), metric.WithDescription(spec.desc)))
		list = append(list, t.counterObs[id])
	}
	t.connectedObs = errs.gauge(m.Int64ObservableGauge("respguard.clients.connected",
		metric.WithUnit("{connection}"), metric.WithDescription("Client connections open now.")))
	return append(list, t.connectedObs)
}

// observe is the metrics callback, run at scrape/collection time.
func (t *Telemetry) observe(_ context.Context, o metric.Observer) error {
	for id, inst := range t.counterObs {
		if inst != nil {
			o.ObserveInt64(inst, t.counts[id].Load())
		}
	}
	o.ObserveInt64(t.connectedObs, t.connected())
	if s, ok := t.poolStats(); ok {
		t.poolInst.observe(o, s)
	}
	t.infoInst.observe(o, &t.info)
	t.reloadInst.observe(o, &t.reloads)
	return nil
}

// goWorker runs f in a goroutine that Shutdown stops (by cancelling its
// context) and waits for. After Shutdown it does nothing.
func (t *Telemetry) goWorker(ctx context.Context, f func(ctx context.Context)) {
	t.workersMu.Lock()
	defer t.workersMu.Unlock()
	if t.stopped {
		return
	}
	t.workers.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stopOnShutdown := context.AfterFunc(t.stopCtx, cancel)
	go func() {
		defer t.workers.Done()
		defer cancel()
		defer stopOnShutdown()
		f(ctx)
	}()
}

// Shutdown stops the INFO scraper, unregisters the metrics callback, and
// flushes and shuts down the providers New built (not injected ones),
// bounded by ctx. Recording after Shutdown is safe and records nothing new
// into owned providers. A second call returns ErrShutdown.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.workersMu.Lock()
	if t.stopped {
		t.workersMu.Unlock()
		return ErrShutdown
	}
	t.stopped = true
	t.stopAll()
	t.workersMu.Unlock()
	t.workers.Wait()
	err := t.registration.Unregister()
	return errors.Join(err, t.shutdownProviders(ctx))
}

func (t *Telemetry) shutdownProviders(ctx context.Context) error {
	var err error
	if t.ownTracer != nil {
		err = errors.Join(err, t.ownTracer.Shutdown(ctx))
	}
	if t.ownMeter != nil {
		err = errors.Join(err, t.ownMeter.Shutdown(ctx))
	}
	return err
}
