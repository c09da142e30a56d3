package telemetry

import (
	"testing"
	"time"
)

func TestResolveTracesAppliesStandardEnvironmentVariables(t *testing.T) {
	base := Config{Traces: TracesConfig{Exporter: "otlp-grpc", Endpoint: "http://cfg:4317"}}.withDefaults().Traces
	tests := []struct {
		name         string
		env          map[string]string
		wantExporter string
		wantRatio    float64
		wantEndpoint string
		wantNever    bool
		wantWarnings int
	}{
		{"no variables keep the config", nil, "otlp-grpc", 0.01, "http://cfg:4317", false, 0},
		{"OTEL_TRACES_EXPORTER=none turns tracing off", map[string]string{envTracesExporter: "none"}, "none", 0.01, "http://cfg:4317", false, 0},
		{"OTEL_TRACES_EXPORTER=console selects stdout", map[string]string{envTracesExporter: "console"}, "stdout", 0.01, "http://cfg:4317", false, 0},
		{"the protocol variable switches grpc to http", map[string]string{envProtocol: "http/protobuf"}, "otlp-http", 0.01, "http://cfg:4317", false, 0},
		{"the traces protocol wins over the generic one", map[string]string{envProtocol: "http/protobuf", envTracesProtocol: "grpc"}, "otlp-grpc", 0.01, "http://cfg:4317", false, 0},
		{"an endpoint variable overrides the config endpoint", map[string]string{envEndpoint: "http://env:4318"}, "otlp-grpc", 0.01, "", false, 0},
		{"always_on samples everything", map[string]string{envTracesSampler: "always_on"}, "otlp-grpc", 1, "http://cfg:4317", false, 0},
		{"parentbased_always_off disables spans", map[string]string{envTracesSampler: "parentbased_always_off"}, "otlp-grpc", 0, "http://cfg:4317", true, 0},
		{"traceidratio takes the argument", map[string]string{envTracesSampler: "traceidratio", envTracesSamplerArg: "0.25"}, "otlp-grpc", 0.25, "http://cfg:4317", false, 0},
		{"a bad ratio argument warns and uses 1", map[string]string{envTracesSampler: "traceidratio", envTracesSamplerArg: "x"}, "otlp-grpc", 1, "http://cfg:4317", false, 1},
		{"an unknown sampler warns and is ignored", map[string]string{envTracesSampler: "jaeger_remote"}, "otlp-grpc", 0.01, "http://cfg:4317", false, 1},
		{"OTEL_SDK_DISABLED wins", map[string]string{envSDKDisabled: "true", envTracesExporter: "otlp"}, "none", 0.01, "http://cfg:4317", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, warnings := resolveTraces(base, func(k string) string { return tt.env[k] })
			if s.Exporter != tt.wantExporter || *s.SampleRatio != tt.wantRatio || s.Endpoint != tt.wantEndpoint ||
				s.neverSample != tt.wantNever || len(warnings) != tt.wantWarnings {
				t.Fatalf("got exporter=%q ratio=%v endpoint=%q never=%v warnings=%v", s.Exporter, *s.SampleRatio, s.Endpoint, s.neverSample, warnings)
			}
		})
	}
}

func TestOTLPExporterVariableEnablesHTTPByDefault(t *testing.T) {
	s, _ := resolveTraces(Config{}.withDefaults().Traces, func(k string) string {
		return map[string]string{envTracesExporter: "otlp"}[k]
	})
	if s.Exporter != exporterOTLPHTTP || s.SlowThreshold != 10*time.Millisecond {
		t.Fatalf("exporter = %q", s.Exporter)
	}
}
