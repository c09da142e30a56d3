package telemetry

import (
	"fmt"
	"strconv"
	"strings"
)

// Standard OpenTelemetry SDK environment variables honoured for traces.
// OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES go through the resource
// detector, and the OTLP exporters read OTEL_EXPORTER_OTLP_* (endpoint,
// headers, timeout, certificates, compression) themselves.
const (
	envSDKDisabled      = "OTEL_SDK_DISABLED"
	envTracesExporter   = "OTEL_TRACES_EXPORTER"
	envProtocol         = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol   = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envEndpoint         = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint   = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envTracesSampler    = "OTEL_TRACES_SAMPLER"
	envTracesSamplerArg = "OTEL_TRACES_SAMPLER_ARG"
)

// traceSettings is TracesConfig after defaults and environment overrides.
type traceSettings struct {
	TracesConfig
	neverSample bool // OTEL_TRACES_SAMPLER=always_off: no spans at all
}

// resolveTraces applies the OTEL_* variables read through getenv over cfg
// (already defaulted): set variables win. Problems are returned as warnings,
// and the variable is ignored, as OpenTelemetry SDKs do.
func resolveTraces(cfg TracesConfig, getenv func(string) string) (traceSettings, []error) {
	s := traceSettings{TracesConfig: cfg}
	var warnings []error
	if err := s.applyExporterEnv(getenv); err != nil {
		warnings = append(warnings, err)
	}
	if err := s.applySamplerEnv(getenv); err != nil {
		warnings = append(warnings, err)
	}
	if getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != "" {
		s.Endpoint = "" // the exporter reads the variable itself
	}
	return s, warnings
}

func (s *traceSettings) applyExporterEnv(getenv func(string) string) error {
	if strings.EqualFold(getenv(envSDKDisabled), "true") {
		s.Exporter = exporterNone
		return nil
	}
	switch name, _, _ := strings.Cut(getenv(envTracesExporter), ","); strings.TrimSpace(name) {
	case "":
	case "none":
		s.Exporter = exporterNone
	case "console":
		s.Exporter = exporterStdout
	case "otlp":
		if s.Exporter != exporterOTLPGRPC {
			s.Exporter = exporterOTLPHTTP // the spec's default protocol
		}
	default:
		return fmt.Errorf("%s=%q: unsupported, want otlp, console or none", envTracesExporter, name)
	}
	return s.applyProtocolEnv(getenv)
}

func (s *traceSettings) applyProtocolEnv(getenv func(string) string) error {
	if s.Exporter != exporterOTLPGRPC && s.Exporter != exporterOTLPHTTP {
		return nil
	}
	key := envTracesProtocol
	proto := getenv(key)
	if proto == "" {
		key, proto = envProtocol, getenv(envProtocol)
	}
	switch proto {
	case "":
	case "grpc":
		s.Exporter = exporterOTLPGRPC
	case "http/protobuf":
		s.Exporter = exporterOTLPHTTP
	default:
		return fmt.Errorf("%s=%q: unsupported, want grpc or http/protobuf", key, proto)
	}
	return nil
}

func (s *traceSettings) applySamplerEnv(getenv func(string) string) error {
	sampler := getenv(envTracesSampler)
	switch strings.TrimPrefix(sampler, "parentbased_") { // respguard's spans are roots
	case "":
	case "always_on":
		s.SampleRatio = new(1.0)
	case "always_off":
		s.SampleRatio, s.neverSample = new(0.0), true
	case "traceidratio":
		return s.applyRatioArg(getenv(envTracesSamplerArg))
	default:
		return fmt.Errorf("%s=%q: unsupported sampler", envTracesSampler, sampler)
	}
	return nil
}

func (s *traceSettings) applyRatioArg(arg string) error {
	if arg == "" {
		s.SampleRatio = new(1.0)
		return nil
	}
	r, err := strconv.ParseFloat(arg, 64)
	if err != nil || r < 0 || r > 1 {
		s.SampleRatio = new(1.0)
		return fmt.Errorf("%s=%q: want a ratio in [0,1]; using 1.0", envTracesSamplerArg, arg)
	}
	s.SampleRatio = new(r)
	return nil
}
