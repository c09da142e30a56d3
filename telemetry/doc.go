// Package telemetry records what respguard sees: per-command OpenTelemetry
// spans, Prometheus metrics, a slow log, and the admin HTTP endpoints.
//
// A [Telemetry] is built once by [New] from a [Config] and injected
// providers; it holds no global state. The proxy calls [Telemetry.CommandDone]
// once per completed command on its hot path: with tracing off that costs a
// couple of histogram observations and no allocation. Tracing decides at the
// end of each command whether to export it (a ratio sampler, plus every
// command slower than traces.slow_threshold) and only then builds the span,
// with the command's real start and end timestamps, so unsampled commands
// cost almost nothing.
//
// Metrics are written with the OpenTelemetry metric API so a MeterProvider
// can be injected (and pushed over OTLP); by default an SDK provider feeds
// the OTel Prometheus exporter behind /metrics. The hot path records into
// per-command attribute sets built once per command name, so it does not
// allocate; the price is about 270ns for the two latency histograms, where
// prometheus/client_golang would take about 110ns.
//
// Every metric name, type, label and meaning is listed in METRICS.md next to
// this file.
//
// Concurrency: all methods of Telemetry are safe for concurrent use.
package telemetry
