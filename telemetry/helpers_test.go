package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestTelemetry builds a Telemetry with its own registry and shuts it
// down at cleanup.
func newTestTelemetry(t testing.TB, cfg Config, opts Options) *Telemetry {
	t.Helper()
	tel, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

// newTracedTelemetry injects a synchronous in-memory span exporter.
func newTracedTelemetry(t testing.TB, cfg Config) (*Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newTestTelemetry(t, cfg, Options{TracerProvider: tp}), exp
}

// command returns a command that took total, upstream spending half of it.
func command(name string, total time.Duration) *Command {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Command{
		Name: name, Start: start, Done: start.Add(total), Upstream: total / 2,
		User: "app", ClientAddr: "10.0.0.7:51234", DB: 2, Decision: "allowed",
		ServerAddr: "redis.internal", ServerPort: 6379,
	}
}

// get performs a GET on the admin handler and returns status and body.
func get(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// scrape parses /metrics with the Prometheus text parser.
func scrape(t testing.TB, tel *Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, tel.AdminHandler(nil), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// metricValue returns the value of the series of family name whose labels
// include want (pairs "k", "v", ...), and whether it exists. Histograms
// return their sample count.
func metricValue(families map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	fam, ok := families[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
