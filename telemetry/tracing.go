package telemetry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Span attribute keys that semantic conventions do not define.
const (
	attrUser     = attribute.Key("respguard.user")
	attrDecision = attribute.Key("respguard.decision")
)

// slowSpansPerSecond bounds the spans the slow rule adds in any one second
// of the clock. When the proxy or Redis is saturated every command is slow
// (queueing included), and a span per command would multiply the CPU spent
// per command just when there is none to spare.
const slowSpansPerSecond = 100

// sampler decides, once a command is done, whether it gets a span. The zero
// value never samples. Immutable after New but for slowSpans, which is shared.
type sampler struct {
	tracer    trace.Tracer  // nil: tracing off
	all       bool          // ratio 1
	bound     uint64        // sampled when rand.Uint64() < bound (ratio * 2^64)
	slow      time.Duration // > 0: commands slower than this are traced, within slowSpans
	slowSpans *spanBudget   // non-nil when slow > 0
}

// spanBudget hands out at most max spans per second of the clock, counted
// by the second a command finished in. Safe for concurrent use.
type spanBudget struct {
	max   uint64        // below 1<<spanCountBits
	state atomic.Uint64 // Unix second << spanCountBits | spans taken in it
}

const spanCountBits = 20

// take reports whether a command that finished at done may have a span.
// A command finished in a second earlier than one already counted gets none.
func (b *spanBudget) take(done time.Time) bool {
	sec := uint64(done.Unix())
	for {
		old := b.state.Load()
		cur, used := old>>spanCountBits, old&(1<<spanCountBits-1)
		next := sec<<spanCountBits | 1
		switch {
		case sec < cur:
			return false
		case sec == cur && used >= b.max:
			return false
		case sec == cur:
			next = old + 1
		}
		if b.state.CompareAndSwap(old, next) {
			return true
		}
	}
}

func newSampler(tracer trace.Tracer, s traceSettings) sampler {
	if tracer == nil || s.neverSample {
		return sampler{}
	}
	ratio := *s.SampleRatio
	sm := sampler{tracer: tracer, all: ratio >= 1, slow: s.SlowThreshold}
	if sm.slow > 0 {
		sm.slowSpans = &spanBudget{max: slowSpansPerSecond}
	}
	if ratio > 0 && ratio < 1 {
		sm.bound = uint64(ratio * (1 << 64))
	}
	return sm
}

// sample reports whether a command that took total and finished at done
// should be traced: by the ratio, or by the slow rule within its budget.
func (s *sampler) sample(total time.Duration, done time.Time) bool {
	switch {
	case s.tracer == nil:
		return false
	case s.all:
		return true
	case s.bound != 0 && rand.Uint64() < s.bound:
		return true
	}
	return s.slow > 0 && total > s.slow && s.slowSpans.take(done)
}

// newTracerProvider builds the SDK provider for s.Exporter, or returns nil
// for "none". Sampling is respguard's (decided before a span is started), so
// the SDK samples everything it is given.
func newTracerProvider(ctx context.Context, s traceSettings, res *resource.Resource) (*sdktrace.TracerProvider, error) {
	exp, err := newSpanExporter(ctx, s)
	if err != nil || exp == nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	), nil
}

func newSpanExporter(ctx context.Context, s traceSettings) (sdktrace.SpanExporter, error) {
	var exp sdktrace.SpanExporter
	var err error
	switch s.Exporter {
	case exporterOTLPHTTP:
		var opts []otlptracehttp.Option
		if s.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(s.Endpoint))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	case exporterOTLPGRPC:
		var opts []otlptracegrpc.Option
		if s.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(s.Endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case exporterStdout:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s trace exporter: %w", s.Exporter, err)
	}
	return exp, nil
}

// emitSpan creates c's span (and its queued children) after the fact, with
// c's own timestamps. stmt is the already-redacted query text or "".
func (t *Telemetry) emitSpan(c *Command, cm *commandMetrics, stmt string) {
	attrs := t.spanAttributes(c, cm, stmt)
	if len(c.Queued) > 0 {
		attrs = append(attrs, semconv.DBOperationBatchSize(len(c.Queued)))
	}
	ctx, span := t.sampler.tracer.Start(context.Background(), cm.operation,
		trace.WithTimestamp(c.Start), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	setSpanStatus(span, c.ErrPrefix)
	for i := range c.Queued {
		t.emitChild(ctx, &c.Queued[i], c)
	}
	span.End(trace.WithTimestamp(c.Done))
}

// emitChild creates the span of a command queued in MULTI, under its EXEC.
// A zero Start or Done is taken from the parent.
func (t *Telemetry) emitChild(ctx context.Context, q, parent *Command) {
	cm := t.commands.get(commandName(q.Name))
	start, done := q.Start, q.Done
	if start.IsZero() {
		start = parent.Start
	}
	if done.IsZero() {
		done = parent.Done
	}
	_, span := t.sampler.tracer.Start(ctx, cm.operation, trace.WithTimestamp(start),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(t.spanAttributes(q, cm, t.statement(q))...))
	setSpanStatus(span, q.ErrPrefix)
	span.End(trace.WithTimestamp(done))
}

func setSpanStatus(span trace.Span, errPrefix string) {
	if errPrefix != "" {
		span.SetStatus(codes.Error, errorCode(errPrefix))
	}
}

// spanAttributes follows the OpenTelemetry database semantic conventions
// for Redis. network.peer.* is the client's address: the connection
// respguard received the command on.
func (t *Telemetry) spanAttributes(c *Command, cm *commandMetrics, stmt string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 14)
	attrs = append(attrs,
		semconv.DBSystemNameRedis,
		semconv.DBOperationName(cm.operation),
		semconv.DBNamespace(strconv.Itoa(c.DB)))
	if stmt != "" {
		attrs = append(attrs, semconv.DBQueryText(stmt))
	}
	if c.ServerAddr != "" {
		attrs = append(attrs, semconv.ServerAddress(c.ServerAddr))
		if c.ServerPort > 0 {
			attrs = append(attrs, semconv.ServerPort(c.ServerPort))
		}
	}
	attrs = appendPeer(attrs, c.ClientAddr)
	if c.User != "" {
		attrs = append(attrs, attrUser.String(c.User))
	}
	if c.Decision != "" {
		attrs = append(attrs, attrDecision.String(c.Decision))
	}
	if c.ErrPrefix != "" {
		code := errorCode(c.ErrPrefix)
		attrs = append(attrs, semconv.ErrorTypeKey.String(code), semconv.DBResponseStatusCode(code))
	}
	return attrs
}

// appendPeer adds network.peer.address and .port from "host:port" (or a
// bare host / unix socket path).
func appendPeer(attrs []attribute.KeyValue, addr string) []attribute.KeyValue {
	if addr == "" {
		return attrs
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return append(attrs, semconv.NetworkPeerAddress(addr))
	}
	attrs = append(attrs, semconv.NetworkPeerAddress(host))
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.NetworkPeerPort(p))
	}
	return attrs
}
