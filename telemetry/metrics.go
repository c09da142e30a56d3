package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of every instrument.
const meterName = "github.com/respguard/respguard/telemetry"

// Label-cardinality bounds: beyond them new values fold into "other".
const (
	maxCommandNames = 512
	maxErrorCodes   = 32 // per command
	maxReasonPairs  = 256
	maxErrorCodeLen = 32
	labelOther      = "other"
)

// latencyBuckets suit Redis commands: 50µs (a local GET) to 10s (a KEYS on a
// big instance, a blocked BLPOP).
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// instruments are the synchronous instruments the hot path records into.
// duration and upstream are nil when the latency histograms are respguard's
// own (see histogram): the OTel ones serve an injected MeterProvider.
type instruments struct {
	duration metric.Float64Histogram
	upstream metric.Float64Histogram
	errors   metric.Int64Counter
	denials  metric.Int64Counter
	guards   metric.Int64Counter
}

// instrumentSpec names and describes an instrument.
type instrumentSpec struct{ name, desc string }

var (
	durationSpec = instrumentSpec{"respguard.command.duration",
		"Time from a command being parsed to its reply being handed to the client writer."}
	upstreamSpec = instrumentSpec{"respguard.command.upstream.duration",
		"Time a command waited on Redis (commands answered by respguard itself are not observed)."}
)

// commandMetrics is what is precomputed for one command name, and its own
// latency histograms.
type commandMetrics struct {
	name      string // lower-case, as labelled
	operation string // upper-case, the span name and db.operation.name
	attrs     attribute.Set
	record    []metric.RecordOption
	errors    *labelCache[string, []metric.AddOption] // by error code
	duration  histogram                               // used when Telemetry.ownHistograms
	upstream  histogram
}

// labelPair keys the (command, reason) and (action, reason) counters.
type labelPair struct{ a, b string }

// newInstruments creates the synchronous instruments; the latency
// histograms only when ownHistograms is false.
func newInstruments(m metric.Meter, ownHistograms bool) (instruments, error) {
	var in instruments
	var err, e error
	if !ownHistograms {
		in.duration, e = m.Float64Histogram(durationSpec.name, metric.WithUnit("s"),
			metric.WithDescription(durationSpec.desc), metric.WithExplicitBucketBoundaries(latencyBuckets...))
		err = errors.Join(err, e)
		in.upstream, e = m.Float64Histogram(upstreamSpec.name, metric.WithUnit("s"),
			metric.WithDescription(upstreamSpec.desc), metric.WithExplicitBucketBoundaries(latencyBuckets...))
		err = errors.Join(err, e)
	}
	in.errors, e = m.Int64Counter("respguard.command.errors", metric.WithUnit("{reply}"),
		metric.WithDescription("Error replies sent to clients, by command and Redis error code."))
	err = errors.Join(err, e)
	in.denials, e = m.Int64Counter("respguard.policy.denials", metric.WithUnit("{command}"),
		metric.WithDescription("Commands refused by policy, by command and reason."))
	err = errors.Join(err, e)
	in.guards, e = m.Int64Counter("respguard.guard.actions", metric.WithUnit("{command}"),
		metric.WithDescription("Commands rewritten or rejected by a guard, by action and reason."))
	err = errors.Join(err, e)
	if err != nil {
		return in, fmt.Errorf("telemetry: create instruments: %w", err)
	}
	return in, nil
}

func newCommandCache() *labelCache[string, *commandMetrics] {
	return newLabelCache(maxCommandNames, labelOther, newCommandMetrics, strings.Clone)
}

func newCommandMetrics(name string) *commandMetrics {
	set := attribute.NewSet(attribute.String("command", name))
	return &commandMetrics{
		name:      name,
		operation: strings.ToUpper(name),
		attrs:     set,
		record:    []metric.RecordOption{metric.WithAttributeSet(set)},
		errors: newLabelCache(maxErrorCodes, labelOther, func(code string) []metric.AddOption {
			s := attribute.NewSet(attribute.String("command", name), attribute.String("error", code))
			return []metric.AddOption{metric.WithAttributeSet(s)}
		}, strings.Clone),
	}
}

func newPairCache(keyA, keyB string) *labelCache[labelPair, []metric.AddOption] {
	build := func(p labelPair) []metric.AddOption {
		s := attribute.NewSet(attribute.String(keyA, p.a), attribute.String(keyB, p.b))
		return []metric.AddOption{metric.WithAttributeSet(s)}
	}
	clone := func(p labelPair) labelPair { return labelPair{strings.Clone(p.a), strings.Clone(p.b)} }
	return newLabelCache(maxReasonPairs, labelPair{labelOther, labelOther}, build, clone)
}

// recordCommand records c's latency and error metrics (never a span).
func (t *Telemetry) recordCommand(ctx context.Context, c *Command, cm *commandMetrics) {
	t.counts[countCommands].Add(1)
	switch {
	case t.ownHistograms:
		cm.duration.observe(c.Done.Sub(c.Start))
		if c.Upstream > 0 {
			cm.upstream.observe(c.Upstream)
		}
	default:
		t.inst.duration.Record(ctx, c.Done.Sub(c.Start).Seconds(), cm.record...)
		if c.Upstream > 0 {
			t.inst.upstream.Record(ctx, c.Upstream.Seconds(), cm.record...)
		}
	}
	if c.ErrPrefix != "" {
		t.counts[countErrorReplies].Add(1)
		t.inst.errors.Add(ctx, 1, cm.errors.get(errorCode(c.ErrPrefix))...)
	}
}

// errorCode returns prefix when it looks like a Redis error code (upper-case
// letters, digits, '_' or '-', at most 32 bytes), else "other": the label
// must not carry message text.
func errorCode(prefix string) string {
	if len(prefix) > maxErrorCodeLen {
		return labelOther
	}
	for i := 0; i < len(prefix); i++ {
		b := prefix[i]
		if !('A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
			return labelOther
		}
	}
	return prefix
}

// commandName maps "" to "unknown" so every command has a label.
func commandName(name string) string {
	if name == "" {
		return "unknown"
	}
	return name
}

// PolicyDenied counts a command refused by policy; command and reason
// become labels (keep both from small fixed sets: after 256 distinct pairs
// new ones are counted as "other").
func (t *Telemetry) PolicyDenied(command, reason string) {
	t.counts[countDenials].Add(1)
	t.inst.denials.Add(context.Background(), 1, t.denials.get(labelPair{command, reason})...)
}

// GuardAction counts a guard intervention; action is e.g. "rewritten" or
// "rejected", reason e.g. "keys_to_scan". Same cardinality bound as
// PolicyDenied.
func (t *Telemetry) GuardAction(action, reason string) {
	t.counts[countGuardActions].Add(1)
	t.inst.guards.Add(context.Background(), 1, t.guards.get(labelPair{action, reason})...)
}
