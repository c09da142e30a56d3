package telemetry

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestOwnHistogramsMatchTheSDK records the same latencies, bucket bounds
// included, through an injected SDK provider (OTel instruments) and through
// respguard's own histograms, and requires the same buckets, counts and
// sums under the same names.
func TestOwnHistogramsMatchTheSDK(t *testing.T) {
	latencies := []time.Duration{0, 1, 50 * time.Microsecond, 50*time.Microsecond + 1, 200 * time.Microsecond,
		250 * time.Microsecond, 3 * time.Millisecond, time.Second, 10 * time.Second, time.Minute}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	sdk := newTestTelemetry(t, Config{}, Options{MeterProvider: mp})
	own := newTestTelemetry(t, Config{}, Options{})
	if sdk.ownHistograms || !own.ownHistograms {
		t.Fatalf("ownHistograms: injected %v, owned %v", sdk.ownHistograms, own.ownHistograms)
	}
	for _, tel := range []*Telemetry{sdk, own} {
		for _, d := range latencies {
			tel.CommandDone(command("get", d))
		}
		local := command("ping", time.Millisecond)
		local.Upstream = 0
		tel.CommandDone(local)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	produced, err := latencyProducer{t: own}.Produce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, got := histogramPoints(rm.ScopeMetrics), histogramPoints(produced)
	if len(want) != 3 { // duration get and ping, upstream get
		t.Fatalf("SDK histograms: %v", want)
	}
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("%s missing from the own histograms", key)
			continue
		}
		if !slices.Equal(g.BucketCounts, w.BucketCounts) || !slices.Equal(g.Bounds, w.Bounds) ||
			g.Count != w.Count || math.Abs(g.Sum-w.Sum) > 1e-9 {
			t.Errorf("%s: own %v count %d sum %v, SDK %v count %d sum %v", key, g.BucketCounts, g.Count, g.Sum, w.BucketCounts, w.Count, w.Sum)
		}
	}
	if len(got) != len(want) {
		t.Errorf("own histograms %d series, SDK %d", len(got), len(want))
	}
}

// histogramPoints indexes the histogram points of sms by "name{command}".
func histogramPoints(sms []metricdata.ScopeMetrics) map[string]metricdata.HistogramDataPoint[float64] {
	out := map[string]metricdata.HistogramDataPoint[float64]{}
	for _, sm := range sms {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			for _, p := range h.DataPoints {
				name, _ := p.Attributes.Value("command")
				out[m.Name+"{"+name.AsString()+"}"] = p
			}
		}
	}
	return out
}

func TestHistogramObserveDoesNotAllocate(t *testing.T) {
	var h histogram
	if allocs := testing.AllocsPerRun(1000, func() { h.observe(time.Millisecond) }); allocs != 0 {
		t.Fatalf("observe allocated %v times", allocs)
	}
}
