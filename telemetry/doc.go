// Package telemetry records what respguard sees: per-command OpenTelemetry
// spans, Prometheus metrics, a slow log, and the admin HTTP endpoints.
//
// A [Telemetry] is built once by [New] from a [Config] and injected
// providers; it holds no global state. The proxy calls [Telemetry.CommandDone]
// once per completed command on its hot path: with tracing off that costs a
// couple of histogram observations and no allocation. Tracing decides at the
// end of each command whether to export it (a ratio sampler, plus commands
// slower than traces.slow_threshold, at most 100 a second) and only then
// builds the span, with the command's real start and end timestamps, so
// unsampled commands cost almost nothing.
//
// Metrics are written with the OpenTelemetry metric API so a MeterProvider
// can be injected (and pushed over OTLP); by default an SDK provider feeds
// the OTel Prometheus exporter behind /metrics. The two per-command latency
// histograms are the exception on that default path: the SDK's synchronous
// histogram costs about 200ns per observation (attribute normalisation, a
// map lookup by attribute set), so respguard keeps its own lock-free
// per-command buckets (two atomic adds) and hands them to the exporter at
// scrape time as a metric producer, under the same names; an injected
// MeterProvider gets ordinary OTel histograms. Labels are built once per
// command name, so the hot path does not allocate.
//
// Every metric name, type, label and meaning is listed in METRICS.md next to
// this file.
//
// Concurrency: all methods of Telemetry are safe for concurrent use.
package telemetry
