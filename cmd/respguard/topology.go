package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/pool/sentinel"
	"github.com/respguard/respguard/telemetry"
)

// upstream.mode values.
const (
	ModeStandalone = "standalone"
	ModeCluster    = "cluster"
	ModeSentinel   = "sentinel"
)

// SentinelConfig is how respguard reaches the sentinels (sentinel mode).
type SentinelConfig struct {
	MasterName  string        `mapstructure:"master_name"`
	Username    string        `mapstructure:"username"`
	Password    string        `mapstructure:"password"`
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// TLS dials the sentinels with upstream.tls's CA and client certificate.
	TLS bool `mapstructure:"tls"`
}

// validateTopology checks upstream.mode and the keys it uses.
func (c Config) validateTopology() error {
	switch c.Upstream.Mode {
	case ModeStandalone, "":
		if len(c.Upstream.Addresses) > 0 || c.Upstream.Sentinel.MasterName != "" {
			return errors.New("upstream.addresses, upstream.sentinel: only used when upstream.mode is cluster or sentinel")
		}
	case ModeCluster:
		return c.clusterConfig(pool.Config{}).Validate()
	case ModeSentinel:
		return c.sentinelConfig(nil).Validate()
	default:
		return fmt.Errorf("upstream.mode: %q is not standalone, cluster or sentinel", c.Upstream.Mode)
	}
	if c.Upstream.ReadFrom != "" && c.Upstream.ReadFrom != cluster.ReadPrimary {
		return errors.New("upstream.read_from: replicas are read from in cluster mode only")
	}
	return nil
}

func (c Config) clusterConfig(node pool.Config) cluster.Config {
	return cluster.Config{Seeds: c.Upstream.Addresses, Node: node, RefreshInterval: c.Upstream.RefreshInterval, ReadFrom: c.Upstream.ReadFrom}
}

func (c Config) sentinelConfig(node *pool.Config) sentinel.Config {
	sc := sentinel.Config{
		Addresses: c.Upstream.Addresses, MasterName: c.Upstream.Sentinel.MasterName,
		Username: c.Upstream.Sentinel.Username, Password: c.Upstream.Sentinel.Password,
		DialTimeout: c.Upstream.Sentinel.DialTimeout,
	}
	if node != nil && c.Upstream.Sentinel.TLS && node.TLS != nil {
		sc.TLS = node.TLS.Clone()
		sc.TLS.ServerName = c.Upstream.TLS.ServerName // "": each sentinel's host
	}
	return sc
}

// upstream is where the proxy sends commands: one pool (standalone, or the
// primary the sentinels name, retargeted on failover) or a cluster.
type upstream struct {
	pool    *pool.Pool       // nil in cluster mode
	cluster *cluster.Cluster // cluster mode only
	node    pool.Config      // template for control connections
	close   func()

	mu            sync.Mutex   // guards primaryChange
	primaryChange func(string) // also told of a new primary (sentinel); see onPrimaryChange
}

// onPrimaryChange registers f to be told the new primary's address after a
// Sentinel failover (after the pool has moved).
func (u *upstream) onPrimaryChange(f func(addr string)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.primaryChange = f
}

func (u *upstream) primaryChanged(addr string) {
	u.mu.Lock()
	f := u.primaryChange
	u.mu.Unlock()
	if f != nil {
		f(addr)
	}
}

// describe names the upstream for the start-up log line.
func (u *upstream) describe() string {
	if u.cluster != nil {
		_, addrs := u.cluster.Primaries()
		return "cluster primaries " + strings.Join(addrs, ",")
	}
	return u.pool.Address()
}

// openUpstream connects to the topology upstream.mode names. Standalone does
// not dial; cluster and sentinel must learn the topology first, so they fail
// when no seed or sentinel answers.
func openUpstream(ctx context.Context, cfg Config, pcfg pool.Config, log *slog.Logger) (*upstream, error) {
	switch cfg.Upstream.Mode {
	case ModeCluster:
		pcfg.TLS = dialedHostTLS(pcfg, cfg)
		cl, err := cluster.New(ctx, cfg.clusterConfig(pcfg), log)
		if err != nil {
			return nil, fmt.Errorf("upstream.mode cluster: %w", err)
		}
		return &upstream{cluster: cl, node: pcfg, close: cl.Close}, nil
	case ModeSentinel:
		pcfg.TLS = dialedHostTLS(pcfg, cfg)
		w, err := sentinel.New(ctx, cfg.sentinelConfig(&pcfg), pcfg, log)
		if err != nil {
			return nil, fmt.Errorf("upstream.mode sentinel: %w", err)
		}
		pcfg.Address = w.Addr()
		p, err := pool.New(pcfg)
		if err != nil {
			return nil, err
		}
		p.SetOnUnavailable(func(error) { w.Recheck() })
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		u := &upstream{pool: p, node: pcfg, close: func() { cancel(); <-done; p.Close() }}
		go func() {
			defer close(done)
			w.Run(runCtx, func(addr string) {
				log.Warn("sentinel: primary changed; replacing upstream connections", "primary", addr)
				p.Retarget(addr)
				u.primaryChanged(addr)
			})
		}()
		return u, nil
	}
	p, err := pool.New(pcfg)
	if err != nil {
		return nil, err
	}
	return &upstream{pool: p, node: pcfg, close: p.Close}, nil
}

// dialedHostTLS lets each node's certificate be checked against the host
// dialed (cluster nodes and promoted replicas live on other hosts), unless
// upstream.tls.server_name names one for all.
func dialedHostTLS(pcfg pool.Config, cfg Config) *tls.Config {
	if pcfg.TLS == nil || cfg.Upstream.TLS.ServerName != "" {
		return pcfg.TLS
	}
	tc := pcfg.TLS.Clone()
	tc.ServerName = ""
	return tc
}

// control returns a control connection to the current primary (the first
// shard's in cluster mode) for probes, INFO scrapes and COMMAND.
func (u *upstream) control() *pool.Control {
	cfg := u.node
	switch {
	case u.cluster != nil:
		if _, addrs := u.cluster.Primaries(); len(addrs) > 0 {
			cfg.Address = addrs[0]
		}
	default:
		cfg.Address = u.pool.Address()
	}
	return pool.NewControl(cfg)
}

// stats adapts the pools' counters to telemetry's.
func (u *upstream) stats() telemetry.PoolStats {
	var s pool.Stats
	max := u.node.WithDefaults().MaxConns
	if u.cluster != nil {
		s = u.cluster.Stats()
		max *= u.cluster.Info().Nodes
	} else {
		s = u.pool.Stats()
	}
	return telemetry.PoolStats{
		Total: s.Total, Idle: s.Idle, Acquired: s.Acquired, Constructing: s.Constructing,
		Max: max, AcquireCount: s.AcquireCount, AcquireWait: s.AcquireWait,
		EmptyAcquireCount: s.EmptyAcquires, CanceledAcquireCount: s.CanceledAcquires,
		Shared: s.Shared, BreakersOpen: s.BreakersOpen, DialErrors: s.DialErrors, Reconnects: s.Reconnects,
	}
}
