package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/pool/sentinel"
	"github.com/respguard/respguard/proxy"
	"github.com/respguard/respguard/telemetry"
)

// Config is respguard's whole configuration, as read from the YAML file,
// RESPGUARD_* environment variables and flags (flag > env > file > default).
type Config struct {
	Listen          string              `mapstructure:"listen"`
	ShutdownTimeout time.Duration       `mapstructure:"shutdown_timeout"`
	SchedPolicy     string              `mapstructure:"sched_policy"` // normal or batch (see SchedBatch)
	Upstream        UpstreamConfig      `mapstructure:"upstream"`
	Pool            PoolConfig          `mapstructure:"pool"`
	Client          proxy.ClientConfig  `mapstructure:"client"`
	Admin           AdminConfig         `mapstructure:"admin"`
	Log             telemetry.LogConfig `mapstructure:"log"`
	Telemetry       TelemetryConfig     `mapstructure:"telemetry"`
	Policy          policy.Config       `mapstructure:"policy"`
	Guard           guard.Config        `mapstructure:"guard"`
	TLS             proxy.TLSConfig     `mapstructure:"tls"`      // client-side TLS (issue 6)
	Security        SecurityConfig      `mapstructure:"security"` // protected mode, AUTH rate limit
}

// TelemetryConfig is traces and the slow log (logging is the top-level log key).
type TelemetryConfig struct {
	Traces         telemetry.TracesConfig  `mapstructure:"traces"`
	Slowlog        telemetry.SlowlogConfig `mapstructure:"slowlog"`
	ScrapeInterval time.Duration           `mapstructure:"scrape_interval"` // upstream INFO scrape period (15s; negative = off)
	// KeyLabels adds a key="<name>" label to respguard_bigkey_* and
	// respguard_hotkey_* (off: they are labelled by rank only, so key names,
	// often ids or e-mail addresses, stay out of the monitoring system; the
	// admin JSON endpoints show them either way).
	KeyLabels bool `mapstructure:"key_labels"`
}

// UpstreamConfig is the upstream Redis.
type UpstreamConfig struct {
	// Mode is the topology: standalone (one Redis at Address), cluster
	// (Redis Cluster, seeded by Addresses) or sentinel (the primary the
	// sentinels at Addresses name).
	Mode      string   `mapstructure:"mode"`
	Addresses []string `mapstructure:"addresses"`
	// ReadFrom sends read-only commands to replicas (cluster mode):
	// primary, replica or prefer-replica.
	ReadFrom        string         `mapstructure:"read_from"`
	RefreshInterval time.Duration  `mapstructure:"refresh_interval"` // cluster topology refresh period
	Sentinel        SentinelConfig `mapstructure:"sentinel"`

	Address      string        `mapstructure:"address"`
	Username     string        `mapstructure:"username"`
	Password     string        `mapstructure:"password"`
	PasswordFile string        `mapstructure:"password_file"`
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	// CommandTimeout fails the commands of a shared connection whose awaited
	// reply makes no progress for this long (0 = wait forever, as Redis
	// clients do by default); blocking commands run on dedicated connections
	// and are exempt.
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
	// TLS to the upstream (off by default).
	TLS UpstreamTLSConfig `mapstructure:"tls"`
}

// PoolConfig sizes the upstream connections.
type PoolConfig struct {
	MaxConns       int           `mapstructure:"max_conns"`
	MinIdleConns   int           `mapstructure:"min_idle_conns"`
	IdleTimeout    time.Duration `mapstructure:"idle_timeout"`
	AcquireTimeout time.Duration `mapstructure:"acquire_timeout"`
	SharedConns    int           `mapstructure:"shared_conns"`
	RetryBackoff   time.Duration `mapstructure:"retry_backoff"`
}

// AdminConfig is the HTTP listener for health, metrics and debug endpoints.
type AdminConfig struct {
	Listen string `mapstructure:"listen"` // "" or "off" disables it
	// Pprof serves Go's /debug/pprof/ profiling endpoints on the admin
	// listener (off by default: they expose heap contents and cost CPU).
	Pprof bool `mapstructure:"pprof"`
}

// defaults lists every key with its default; viper binds RESPGUARD_* env
// vars only for keys it knows, so each key must appear here.
func defaults() map[string]any {
	return map[string]any{
		"listen":                          proxy.DefaultListen,
		"shutdown_timeout":                proxy.DefaultShutdownTimeout,
		"sched_policy":                    SchedNormal,
		"upstream.address":                pool.DefaultAddress,
		"upstream.mode":                   ModeStandalone,
		"upstream.addresses":              []string{},
		"upstream.read_from":              cluster.ReadPrimary,
		"upstream.refresh_interval":       cluster.DefaultRefreshInterval,
		"upstream.sentinel.master_name":   "",
		"upstream.sentinel.username":      "",
		"upstream.sentinel.password":      "",
		"upstream.sentinel.dial_timeout":  sentinel.DefaultDialTimeout,
		"upstream.sentinel.tls":           false,
		"upstream.username":               "",
		"upstream.password":               "",
		"upstream.password_file":          "",
		"upstream.dial_timeout":           pool.DefaultDialTimeout,
		"upstream.command_timeout":        time.Duration(0),
		"pool.max_conns":                  pool.DefaultMaxConns,
		"pool.min_idle_conns":             0,
		"pool.idle_timeout":               pool.DefaultIdleTimeout,
		"pool.acquire_timeout":            pool.DefaultAcquireTimeout,
		"pool.shared_conns":               pool.DefaultSharedConns,
		"pool.retry_backoff":              pool.DefaultRetryBackoff,
		"client.max_clients":              proxy.DefaultMaxClients,
		"client.idle_timeout":             time.Duration(0),
		"client.max_bulk_len":             512 << 20,
		"client.max_multibulk_len":        1 << 20,
		"client.max_inline_size":          64 << 10,
		"client.query_buffer_limit":       1 << 30,
		"client.output_buffer_limit":      proxy.DefaultOutputBufferLimit,
		"client.output_buffer_soft_limit": 0,
		"client.output_buffer_soft_time":  time.Duration(0),
		"client.max_pending":              proxy.DefaultMaxPending,
		"client.write_timeout":            proxy.DefaultWriteTimeout,
		"client.park_after":               proxy.DefaultParkAfter,
		"admin.listen":                    "127.0.0.1:9180",
		"admin.pprof":                     false,
		"telemetry.key_labels":            false,
		"log.level":                       "info",
		"log.format":                      "text",
		"telemetry.traces.exporter":       "none",
		"telemetry.traces.endpoint":       "",
		"telemetry.traces.sample_ratio":   telemetry.DefaultSampleRatio,
		"telemetry.traces.slow_threshold": telemetry.DefaultSlowThreshold,
		"telemetry.traces.statement":      string(telemetry.StatementKeys),
		"telemetry.traces.service_name":   telemetry.DefaultServiceName,
		"telemetry.slowlog.threshold":     telemetry.DefaultSlowThreshold,
		"telemetry.slowlog.max_len":       telemetry.DefaultSlowlogMaxLen,
		"telemetry.scrape_interval":       telemetry.DefaultScrapeInterval,
		"policy.mode":                     policy.ModeEnforce,
		"policy.default_rules":            "",
		"policy.users":                    map[string]string{},
		"policy.password_files":           map[string]string{},
		"policy.rename":                   map[string]string{},
		"policy.script_identity":          policy.ScriptsRefuse,
		"policy.script_users":             map[string]string{},
		"policy.script_password_files":    map[string]string{},
		"guard.unlink.mode":               guard.UnlinkLarge,
		"guard.unlink.min_elements":       guard.DefaultUnlinkMinElements,
		"guard.unlink.min_bytes":          guard.DefaultUnlinkMinBytes,
		"guard.flush_async":               false,
		"guard.max_elements":              guard.DefaultMaxElements,
		"guard.oversize":                  guard.OversizeReject,
		"guard.size_cache_ttl":            guard.DefaultSizeCacheTTL,
		"guard.stream_maxlen":             []guard.StreamMaxlen{},
		"guard.require_ttl":               []string{},
		"guard.top_k":                     guard.DefaultTopK,
		// Security (issue 6).
		"tls.cert_file":                     "",
		"tls.key_file":                      "",
		"tls.client_ca_file":                "",
		"tls.min_version":                   "1.2",
		"tls.listen":                        "",
		"tls.handshake_timeout":             proxy.DefaultHandshakeTimeout,
		"upstream.tls.enabled":              false,
		"upstream.tls.ca_file":              "",
		"upstream.tls.server_name":          "",
		"upstream.tls.cert_file":            "",
		"upstream.tls.key_file":             "",
		"upstream.tls.insecure_skip_verify": false,
		"security.protected_mode":           true,
		"security.auth_rate_limit":          DefaultAuthRateLimit,
	}
}

// secretKeys are masked by --print-config.
var secretKeys = []string{"upstream.password", "upstream.sentinel.password"}

// flagKeys maps command-line flags to config keys.
var flagKeys = map[string]string{
	"listen":       "listen",
	"upstream":     "upstream.address",
	"admin-listen": "admin.listen",
}

// newFlags declares respguard's flags.
func newFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("respguard", pflag.ContinueOnError)
	fs.String("config", "", "YAML config file (also RESPGUARD_CONFIG)")
	fs.String("listen", proxy.DefaultListen, "address to serve Redis clients on")
	fs.String("upstream", pool.DefaultAddress, "upstream Redis address (upstream.address)")
	fs.String("admin-listen", "127.0.0.1:9180", "admin HTTP address for /healthz, /readyz, /metrics (\"off\" disables)")
	fs.Bool("print-config", false, "print the effective configuration (secrets masked) and exit")
	fs.Bool("version", false, "print the version and exit")
	return fs
}

// loaded is one reading of the configuration.
type loaded struct {
	v        *viper.Viper
	cfg      Config
	path     string   // the config file ("" if none)
	warnings []string // RESPGUARD_* variables that set nothing, for a WARN once logging is up
}

// load builds the effective configuration from args and env.
func load(fs *pflag.FlagSet, args []string, environ func(string) (string, bool)) (*viper.Viper, Config, error) {
	l, err := loadAll(fs, args, environ)
	return l.v, l.cfg, err
}

// loadAll reads flags, RESPGUARD_* variables and the config file (always
// YAML, whatever its extension), decodes and validates them. Every error
// names the key it is about.
func loadAll(fs *pflag.FlagSet, args []string, environ func(string) (string, bool)) (loaded, error) {
	var l loaded
	if err := fs.Parse(args); err != nil {
		return l, err
	}
	v, err := newViper(fs)
	if err != nil {
		return l, err
	}
	l.v = v
	l.path, _ = fs.GetString("config")
	if l.path == "" {
		l.path, _ = environ(configEnv)
	}
	doc, err := readConfigFile(v, l.path)
	if err != nil {
		return l, err
	}
	env := os.Environ() // what viper's AutomaticEnv reads
	l.warnings, err = checkEnv(env, slices.Collect(maps.Keys(defaults())))
	if err != nil {
		return l, err
	}
	if err := decodeConfig(v, &l.cfg); err != nil {
		return l, nameSources(err, fs)
	}
	if err := refuseZeroDefaults(l.cfg); err != nil {
		return l, nameSources(err, fs)
	}
	if err := applyNamedMaps(&l.cfg, doc, env); err != nil {
		return l, err
	}
	if err := l.cfg.readPasswordFile(); err != nil {
		return l, err
	}
	return l, l.cfg.Validate()
}

// newViper sets up defaults, RESPGUARD_* variables and flags.
func newViper(fs *pflag.FlagSet) (*viper.Viper, error) {
	v := viper.New()
	for k, d := range defaults() {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix(strings.TrimSuffix(envPrefix, "_"))
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for flag, key := range flagKeys {
		if err := v.BindPFlag(key, fs.Lookup(flag)); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// readConfigFile reads path ("" = none) into v as YAML and returns the
// document as written, map keys in their original case. A file with no
// settings (empty, or only comments) is refused: it is what a truncated
// file looks like, and it would silently drop every protection.
func readConfigFile(v *viper.Viper, path string) (map[string]any, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("read config %s: not valid YAML: %w", path, err)
	}
	if len(doc) == 0 {
		return nil, fmt.Errorf("read config %s: the file has no settings (empty or only comments); to run on defaults, start without --config", path)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return doc, nil
}

// nameSources adds to each key error the flag or variable that set the key,
// when it did not come from the file.
func nameSources(err error, fs *pflag.FlagSet) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	for _, e := range joined.Unwrap() {
		ke, ok := e.(*keyError)
		if !ok {
			continue
		}
		key := ke.key
		for flag, k := range flagKeys {
			if k == key && fs.Changed(flag) {
				ke.key += " (flag --" + flag + ")"
			}
		}
		if _, set := os.LookupEnv(envName(key)); set {
			ke.key += " (" + envName(key) + ")"
		}
	}
	return err
}

// readPasswordFile sets upstream.password from upstream.password_file.
func (c *Config) readPasswordFile() error {
	if c.Upstream.PasswordFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.Upstream.PasswordFile)
	if err != nil {
		return fmt.Errorf("upstream.password_file: %w", err)
	}
	c.Upstream.Password = strings.TrimSpace(string(b))
	return nil
}

// proxyConfig and poolConfig split Config for the packages that use it.
func (c Config) proxyConfig() proxy.Config {
	return proxy.Config{Listen: c.Listen, ShutdownTimeout: c.ShutdownTimeout, Client: c.Client}
}

func (c Config) telemetryConfig() telemetry.Config {
	return telemetry.Config{Traces: c.Telemetry.Traces, Slowlog: c.Telemetry.Slowlog, Log: c.Log}
}

func (c Config) poolConfig() pool.Config {
	return pool.Config{
		Address: c.Upstream.Address, Username: c.Upstream.Username, Password: c.Upstream.Password,
		DialTimeout: c.Upstream.DialTimeout, CommandTimeout: c.Upstream.CommandTimeout, MaxConns: c.Pool.MaxConns, MinIdleConns: c.Pool.MinIdleConns,
		IdleTimeout: c.Pool.IdleTimeout, AcquireTimeout: c.Pool.AcquireTimeout,
		SharedConns: c.Pool.SharedConns, RetryBackoff: c.Pool.RetryBackoff,
	}
}

// Validate checks every section, naming offending keys.
func (c Config) Validate() error {
	return errors.Join(c.proxyConfig().Validate(), c.poolConfig().Validate(), c.telemetryConfig().Validate(), c.Policy.Validate(), c.Guard.Validate(),
		c.TLS.Validate(), c.Upstream.TLS.validate(), c.Security.validate(), c.validateListeners(), c.validateTopology(),
		validateSchedPolicy(c.SchedPolicy))
}

// validateListeners checks that tls.listen and listen are different addresses.
func (c Config) validateListeners() error {
	if c.TLS.Listen != "" && c.TLS.Listen == c.proxyConfig().WithDefaults().Listen {
		return errors.New("tls.listen: must differ from listen (leave it empty to serve TLS on listen itself)")
	}
	return nil
}

// printConfig writes the effective configuration as YAML, secrets masked;
// the named maps come from cfg, where their names keep their case.
func printConfig(v *viper.Viper, cfg Config, w io.Writer) error {
	all := v.AllSettings()
	for _, key := range secretKeys {
		if v.GetString(key) != "" {
			setNested(all, key, "********")
		}
	}
	for key, m := range cfg.namedMapTargets() {
		setNested(all, key, maskNamedMap(key, *m))
	}
	out, err := yaml.Marshal(all)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

func setNested(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	m[parts[len(parts)-1]] = val
}

// maskPasswords hides the ">password" and "<password" rules of an ACL rule
// string; "#<hash>" rules stay, as ACL LIST shows them.
func maskPasswords(rules string) string {
	fields := strings.Fields(rules)
	for i, f := range fields {
		if strings.HasPrefix(f, ">") || strings.HasPrefix(f, "<") {
			fields[i] = f[:1] + "********"
		}
	}
	return strings.Join(fields, " ")
}
