package telemetry

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// discardExporter drops spans; the batch processor in front of it is the
// production set-up.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// newBenchTelemetry returns a Telemetry with tracing off (ratio < 0) or at
// ratio through a batching SDK provider.
func newBenchTelemetry(tb testing.TB, ratio float64) *Telemetry {
	var opts Options
	if ratio >= 0 {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
		tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		opts.TracerProvider = tp
	}
	cfg := Config{}
	if ratio >= 0 {
		cfg.Traces.SampleRatio = new(ratio)
	}
	return newTestTelemetry(tb, cfg, opts)
}

func benchCommand() *Command {
	c := command("get", 300*time.Microsecond)
	c.Args, c.KeyIndexes = args("get", "user:1"), []int{1}
	return c
}

func BenchmarkCommandDone(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"tracing=off", -1}, {"tracing=1%", 0.01}, {"tracing=100%", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			tel := newBenchTelemetry(b, bc.ratio)
			c := benchCommand()
			b.ReportAllocs()
			for b.Loop() {
				tel.CommandDone(c)
			}
		})
	}
}

// BenchmarkCommandDoneSaturated is a saturated proxy: every command waited
// past slow_threshold (queueing included), as at redis-benchmark -c 1000 on
// one CPU. Spans are bounded per second; the slow log still takes each one.
func BenchmarkCommandDoneSaturated(b *testing.B) {
	tel := newBenchTelemetry(b, 0.01)
	c := benchCommand()
	c.Done = c.Start.Add(50 * time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		tel.CommandDone(c)
	}
}

func BenchmarkCommandDoneParallel(b *testing.B) {
	tel := newBenchTelemetry(b, 0.01)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := benchCommand()
		for pb.Next() {
			tel.CommandDone(c)
		}
	})
}

func TestCommandDoneDoesNotAllocateWhenNotTracedOrSlow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ratio float64
	}{{"with tracing off", -1}, {"with tracing on but not sampled", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			tel := newBenchTelemetry(t, tc.ratio)
			c := benchCommand()
			c.ErrPrefix = "WRONGTYPE"
			tel.CommandDone(c) // builds the per-command label sets once
			if allocs := testing.AllocsPerRun(1000, func() { tel.CommandDone(c) }); allocs != 0 {
				t.Fatalf("CommandDone allocated %v times per call", allocs)
			}
		})
	}
}

func TestCountersDoNotAllocate(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	tel.PolicyDenied("keys", "dangerous")
	tel.GuardAction("rewritten", "del_to_unlink")
	allocs := testing.AllocsPerRun(1000, func() {
		tel.ClientAccepted()
		tel.ClientClosed()
		tel.BytesIn(10)
		tel.BytesOut(10)
		tel.PolicyDenied("keys", "dangerous")
		tel.GuardAction("rewritten", "del_to_unlink")
	})
	if allocs != 0 {
		t.Fatalf("counters allocated %v times", allocs)
	}
}
