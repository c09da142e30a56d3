package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"the zero value is valid", Config{}, ""},
		{"a full valid config is accepted", Config{
			Traces:  TracesConfig{Exporter: "otlp-http", Endpoint: "http://otel:4318", SampleRatio: new(0.5), Statement: StatementFull},
			Slowlog: SlowlogConfig{Threshold: time.Second, MaxLen: 10},
			Log:     LogConfig{Level: "debug", Format: "json"},
		}, ""},
		{"an unknown exporter names its key", Config{Traces: TracesConfig{Exporter: "zipkin"}}, "telemetry.traces.exporter:"},
		{"a ratio above one names its key", Config{Traces: TracesConfig{SampleRatio: new(1.5)}}, "telemetry.traces.sample_ratio: must be in [0,1]"},
		{"a negative ratio is rejected", Config{Traces: TracesConfig{SampleRatio: new(-0.1)}}, "telemetry.traces.sample_ratio"},
		{"an unknown statement mode is rejected", Config{Traces: TracesConfig{Statement: "some"}}, "telemetry.traces.statement:"},
		{"an endpoint without scheme is rejected", Config{Traces: TracesConfig{Endpoint: "otel:4318"}}, "telemetry.traces.endpoint:"},
		{"a negative slowlog length is rejected", Config{Slowlog: SlowlogConfig{MaxLen: -1}}, "telemetry.slowlog.max_len:"},
		{"an unknown log level is rejected", Config{Log: LogConfig{Level: "loud"}}, "log.level:"},
		{"an unknown log format is rejected", Config{Log: LogConfig{Format: "xml"}}, "log.format:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigZeroValueMeansDefaults(t *testing.T) {
	d := Config{}.withDefaults()
	if d.Traces.Exporter != "none" || *d.Traces.SampleRatio != 0.01 || d.Traces.SlowThreshold != 10*time.Millisecond ||
		d.Traces.Statement != StatementKeys || d.Traces.ServiceName != "respguard" ||
		d.Slowlog.Threshold != 10*time.Millisecond || d.Slowlog.MaxLen != 128 {
		t.Fatalf("defaults = %+v", d)
	}
	if got := *(Config{Traces: TracesConfig{SampleRatio: new(0.0)}}).withDefaults().Traces.SampleRatio; got != 0 {
		t.Fatalf("an explicit ratio of 0 became %v", got)
	}
}

func TestNewLoggerWritesJSONAtTheConfiguredLevel(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(LogConfig{Level: "warn", Format: "json"}, &buf)
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" {
		t.Fatalf("record = %v", rec)
	}
}

func TestNewLoggerDefaultsToTextAtInfo(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(LogConfig{}, &buf)
	log.Debug("hidden")
	log.Info("shown")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "level=INFO msg=shown") {
		t.Fatalf("log output = %q", got)
	}
}
