package pool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Config describes the upstream and how many connections respguard keeps to
// it. The zero value of each field means the default given beside it.
type Config struct {
	Address        string        `mapstructure:"address"`         // host:port of Redis (127.0.0.1:6379)
	Username       string        `mapstructure:"username"`        // ACL user for AUTH; empty = "default"
	Password       string        `mapstructure:"password"`        // empty = no AUTH
	DialTimeout    time.Duration `mapstructure:"dial_timeout"`    // dial plus AUTH/HELLO/SELECT (5s)
	MaxConns       int           `mapstructure:"max_conns"`       // dedicated connections at most (64)
	MinIdleConns   int           `mapstructure:"min_idle_conns"`  // dedicated connections kept idle (0)
	IdleTimeout    time.Duration `mapstructure:"idle_timeout"`    // idle dedicated connection closed after (5m)
	AcquireTimeout time.Duration `mapstructure:"acquire_timeout"` // wait for a dedicated connection (5s)
	SharedConns    int           `mapstructure:"shared_conns"`    // multiplexed connections per (db, protocol) (1)
	RetryBackoff   time.Duration `mapstructure:"retry_backoff"`   // after a failed dial, fail fast for this long (250ms, doubling to 5s)
	// CommandTimeout fails a shared connection whose awaited reply makes no
	// progress for this long (Redis paused or hung): its in-flight commands
	// get "-ERR upstream unavailable" and it is replaced. Dedicated
	// connections, which carry blocking commands, are exempt. 0 = none, as Redis.
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
	// StallAfter retires a shared connection whose awaited reply has made
	// no progress for this long (a busy script, a write held by CLIENT
	// PAUSE, a slow command at its head): later commands go over a fresh
	// connection instead of queueing behind it, at most MaxRetired times
	// per (db, protocol) at once. 0 = DefaultStallAfter; < 0 = never.
	StallAfter time.Duration `mapstructure:"-"`

	// TLS, when non-nil, is used to dial the upstream.
	TLS *tls.Config `mapstructure:"-"`

	// ReadOnly sends READONLY on every new connection, so a Redis Cluster
	// replica serves reads for its primary's slots instead of answering
	// MOVED. Set by package cluster for replica pools; Redis outside cluster
	// mode refuses READONLY, so connections to it would fail to set up.
	ReadOnly bool `mapstructure:"-"`
}

// Defaults.
const (
	DefaultAddress        = "127.0.0.1:6379"
	DefaultDialTimeout    = 5 * time.Second
	DefaultMaxConns       = 64
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultAcquireTimeout = 5 * time.Second
	DefaultSharedConns    = 1
	DefaultStallAfter     = 100 * time.Millisecond
	// MaxRetired bounds the retired shared connections of one (db,
	// protocol) still draining at once; past it, commands queue as before.
	MaxRetired          = 4
	DefaultRetryBackoff = 250 * time.Millisecond
	maxRetryBackoff     = 5 * time.Second
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AcquireTimeout == 0 {
		c.AcquireTimeout = DefaultAcquireTimeout
	}
	if c.StallAfter == 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.SharedConns == 0 {
		c.SharedConns = DefaultSharedConns
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	return c
}

// Validate reports the first invalid field, named by its config key under
// "upstream." or "pool.".
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.WithDefaults().Address); err != nil {
		errs = append(errs, fmt.Errorf("upstream.address: %w", err))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("upstream.dial_timeout: must not be negative"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, errors.New("pool.max_conns: must not be negative"))
	}
	if c.MinIdleConns < 0 || c.MinIdleConns > c.WithDefaults().MaxConns {
		errs = append(errs, errors.New("pool.min_idle_conns: must be between 0 and pool.max_conns"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, errors.New("pool.idle_timeout: must not be negative"))
	}
	if c.AcquireTimeout < 0 {
		errs = append(errs, errors.New("pool.acquire_timeout: must not be negative"))
	}
	if c.SharedConns < 0 || c.SharedConns > 64 {
		errs = append(errs, errors.New("pool.shared_conns: must be between 1 and 64"))
	}
	if c.CommandTimeout < 0 {
		errs = append(errs, errors.New("upstream.command_timeout: must not be negative"))
	}
	if c.RetryBackoff < 0 {
		errs = append(errs, errors.New("pool.retry_backoff: must not be negative"))
	}
	return errors.Join(errs...)
}
