package telemetry

import (
	"fmt"
	"net/url"
	"time"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultSampleRatio     = 0.01
	DefaultSlowThreshold   = 10 * time.Millisecond
	DefaultSlowlogMaxLen   = 128
	DefaultServiceName     = "respguard"
	DefaultScrapeInterval  = 15 * time.Second
	defaultReadyTimeout    = 2 * time.Second
	maxSlowlogMaxLen       = 1 << 20
	exporterNone           = "none"
	exporterOTLPGRPC       = "otlp-grpc"
	exporterOTLPHTTP       = "otlp-http"
	exporterStdout         = "stdout"
	logFormatText          = "text"
	logFormatJSON          = "json"
	configKeyTracesPrefix  = "telemetry.traces."
	configKeySlowlogPrefix = "telemetry.slowlog."
	configKeyLogPrefix     = "log."
)

// StatementMode says how much of a command's arguments reach db.query.text
// and the slow log. The zero value ("") means StatementKeys.
type StatementMode string

// Statement modes.
const (
	// StatementKeys keeps the command name and key arguments; every other
	// argument becomes "?". The default.
	StatementKeys StatementMode = "keys"
	// StatementFull keeps every argument (values included: may leak data).
	StatementFull StatementMode = "full"
	// StatementNone keeps only the command name.
	StatementNone StatementMode = "none"
)

// Config is the telemetry section of respguard's configuration
// (telemetry.* keys). The zero value means all defaults: no trace exporter,
// a 10ms slow log of 128 entries, info-level text logs.
type Config struct {
	Traces  TracesConfig  `mapstructure:"traces"`
	Slowlog SlowlogConfig `mapstructure:"slowlog"`
	Log     LogConfig     `mapstructure:"log"`
}

// TracesConfig configures per-command spans. The standard OTEL_* environment
// variables override these keys when set (see README: OTEL_TRACES_EXPORTER,
// OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER[_ARG],
// OTEL_SDK_DISABLED).
type TracesConfig struct {
	// Exporter is "none" (the default, also for ""), "otlp-grpc",
	// "otlp-http" or "stdout". Ignored when Options.TracerProvider is set.
	Exporter string `mapstructure:"exporter"`
	// Endpoint is the OTLP collector URL, e.g. "http://otel:4318" ("" means
	// the exporter's default or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, which
	// wins when set). An http:// URL means no TLS.
	Endpoint string `mapstructure:"endpoint"`
	// SampleRatio is the fraction of ordinary commands traced, in [0,1].
	// nil means DefaultSampleRatio (0.01); use new(0.0) for "slow ones only".
	SampleRatio *float64 `mapstructure:"sample_ratio"`
	// SlowThreshold: a command whose total time exceeds it is traced
	// whatever the ratio, at most 100 such commands a second. 0 means DefaultSlowThreshold (10ms); negative
	// disables this rule.
	SlowThreshold time.Duration `mapstructure:"slow_threshold"`
	// Statement selects db.query.text redaction; "" means "keys".
	Statement StatementMode `mapstructure:"statement"`
	// ServiceName is the service.name resource attribute; "" means
	// "respguard". OTEL_SERVICE_NAME overrides it.
	ServiceName string `mapstructure:"service_name"`
}

// SlowlogConfig configures the proxy-side slow log (commands whose total
// time, as seen by the client, exceeds Threshold).
type SlowlogConfig struct {
	// Threshold: 0 means DefaultSlowThreshold (10ms); negative disables
	// the slow log.
	Threshold time.Duration `mapstructure:"threshold"`
	// MaxLen is how many entries are kept (oldest dropped first); 0 means
	// DefaultSlowlogMaxLen (128).
	MaxLen int `mapstructure:"max_len"`
}

// LogConfig configures the structured logger built by NewLogger.
type LogConfig struct {
	// Level is "debug", "info" (the default, also for ""), "warn" or "error".
	Level string `mapstructure:"level"`
	// Format is "text" (the default, also for "") or "json".
	Format string `mapstructure:"format"`
}

// Validate reports the first invalid key, named by its full configuration
// path (e.g. "telemetry.traces.sample_ratio: must be in [0,1]").
func (c Config) Validate() error {
	if err := c.Traces.validate(); err != nil {
		return err
	}
	if c.Slowlog.MaxLen < 0 || c.Slowlog.MaxLen > maxSlowlogMaxLen {
		return fmt.Errorf("%smax_len: must be in [0,%d], got %d", configKeySlowlogPrefix, maxSlowlogMaxLen, c.Slowlog.MaxLen)
	}
	return c.Log.validate()
}

func (c TracesConfig) validate() error {
	switch c.Exporter {
	case "", exporterNone, exporterOTLPGRPC, exporterOTLPHTTP, exporterStdout:
	default:
		return fmt.Errorf("%sexporter: must be none, otlp-grpc, otlp-http or stdout, got %q", configKeyTracesPrefix, c.Exporter)
	}
	if r := c.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		return fmt.Errorf("%ssample_ratio: must be in [0,1], got %v", configKeyTracesPrefix, *r)
	}
	switch c.Statement {
	case "", StatementKeys, StatementFull, StatementNone:
	default:
		return fmt.Errorf("%sstatement: must be keys, full or none, got %q", configKeyTracesPrefix, c.Statement)
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%sendpoint: must be a URL like http://host:4318, got %q", configKeyTracesPrefix, c.Endpoint)
		}
	}
	return nil
}

func (c LogConfig) validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return fmt.Errorf("%slevel: %w", configKeyLogPrefix, err)
	}
	switch c.Format {
	case "", logFormatText, logFormatJSON:
		return nil
	}
	return fmt.Errorf("%sformat: must be text or json, got %q", configKeyLogPrefix, c.Format)
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	t := &c.Traces
	if t.Exporter == "" {
		t.Exporter = exporterNone
	}
	if t.SampleRatio == nil {
		t.SampleRatio = new(DefaultSampleRatio)
	}
	if t.SlowThreshold == 0 {
		t.SlowThreshold = DefaultSlowThreshold
	}
	if t.Statement == "" {
		t.Statement = StatementKeys
	}
	if t.ServiceName == "" {
		t.ServiceName = DefaultServiceName
	}
	if c.Slowlog.Threshold == 0 {
		c.Slowlog.Threshold = DefaultSlowThreshold
	}
	if c.Slowlog.MaxLen == 0 {
		c.Slowlog.MaxLen = DefaultSlowlogMaxLen
	}
	return c
}
