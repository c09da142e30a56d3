package telemetry

import (
	"context"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestNewRejectsAnInvalidConfig(t *testing.T) {
	_, err := New(context.Background(), Config{Traces: TracesConfig{SampleRatio: new(2.0)}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "telemetry.traces.sample_ratio") {
		t.Fatalf("New = %v", err)
	}
}

func TestEveryExporterBuildsAndShutsDown(t *testing.T) {
	for _, exporter := range []string{"none", "otlp-grpc", "otlp-http", "stdout"} {
		t.Run(exporter, func(t *testing.T) {
			cfg := Config{Traces: TracesConfig{Exporter: exporter, Endpoint: "http://127.0.0.1:1"}}
			tel, err := New(context.Background(), cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if on := tel.sampler.tracer != nil; on != (exporter != "none") {
				t.Fatalf("tracing on = %v", on)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tel.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestInjectedMeterProviderReceivesTheMetrics uses a manual reader, as a
// caller exporting metrics over OTLP would.
func TestInjectedMeterProviderReceivesTheMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tel := newTestTelemetry(t, Config{}, Options{MeterProvider: mp})
	tel.CommandDone(command("get", time.Millisecond))
	tel.ClientAccepted()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names[m.Name] = true
		}
	}
	for _, want := range []string{"respguard.command.duration", "respguard.clients.accepted", "respguard.clients.connected"} {
		if !names[want] {
			t.Errorf("metric %s missing from %v", want, names)
		}
	}
}
