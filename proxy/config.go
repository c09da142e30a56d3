package proxy

import (
	"errors"
	"net"
	"time"

	"github.com/respguard/respguard/proxy/resp"
)

// Config is the client-facing side of the proxy. The zero value of each
// field means the default given beside it.
type Config struct {
	Listen          string        `mapstructure:"listen"`           // address to serve clients on (127.0.0.1:6380)
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"` // drain bound on SIGTERM (10s)
	Client          ClientConfig  `mapstructure:"client"`
}

// ClientConfig bounds what one client may do and hold.
type ClientConfig struct {
	MaxClients        int           `mapstructure:"max_clients"`         // connections at once (10000, Redis maxclients)
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`        // close a client idle this long (0 = never, Redis timeout 0); not for Pub/Sub or blocked clients
	MaxBulkLen        int64         `mapstructure:"max_bulk_len"`        // largest argument (512 MB, Redis proto-max-bulk-len)
	MaxMultibulkLen   int64         `mapstructure:"max_multibulk_len"`   // most arguments in one command (1048576)
	MaxInlineSize     int           `mapstructure:"max_inline_size"`     // longest inline command (64 KB, as Redis)
	QueryBufferLimit  int           `mapstructure:"query_buffer_limit"`  // largest single command held (1 GB, Redis client-query-buffer-limit)
	OutputBufferLimit int           `mapstructure:"output_buffer_limit"` // replies buffered for a client before it is closed (256 MB)
	// OutputBufferSoftLimit and OutputBufferSoftTime: a client whose
	// buffered replies stay above the soft limit for longer than the time is
	// closed too (Redis client-output-buffer-limit's soft limit; 0 = none).
	OutputBufferSoftLimit int           `mapstructure:"output_buffer_soft_limit"`
	OutputBufferSoftTime  time.Duration `mapstructure:"output_buffer_soft_time"`
	MaxPending            int           `mapstructure:"max_pending"`   // commands awaiting replies before respguard stops reading from the client (10000)
	WriteTimeout          time.Duration `mapstructure:"write_timeout"` // a write to a client that stopped reading fails after (60s)
	// ParkAfter: a client on a plain TCP or Unix socket (Linux) that has
	// sent nothing for between one and two of these, with no reply
	// outstanding, is parked: it keeps no goroutine until it sends again;
	// new clients then start parked (5s; negative = off).
	ParkAfter time.Duration `mapstructure:"park_after"`
}

// Defaults.
const (
	DefaultListen            = "127.0.0.1:6380"
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultMaxClients        = 10000
	DefaultOutputBufferLimit = 256 << 20
	DefaultMaxPending        = 10000
	DefaultWriteTimeout      = 60 * time.Second
	DefaultParkAfter         = 5 * time.Second
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	cc := &c.Client
	if cc.MaxClients == 0 {
		cc.MaxClients = DefaultMaxClients
	}
	if cc.MaxBulkLen == 0 {
		cc.MaxBulkLen = resp.DefaultMaxBulkLen
	}
	if cc.MaxMultibulkLen == 0 {
		cc.MaxMultibulkLen = resp.DefaultMaxMultibulkLen
	}
	if cc.MaxInlineSize == 0 {
		cc.MaxInlineSize = resp.DefaultMaxInlineSize
	}
	if cc.QueryBufferLimit == 0 {
		cc.QueryBufferLimit = resp.DefaultMaxQueryBuffer
	}
	if cc.OutputBufferLimit == 0 {
		cc.OutputBufferLimit = DefaultOutputBufferLimit
	}
	if cc.ParkAfter == 0 {
		cc.ParkAfter = DefaultParkAfter
	}
	if cc.MaxPending == 0 {
		cc.MaxPending = DefaultMaxPending
	}
	if cc.WriteTimeout == 0 {
		cc.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Validate reports every invalid field, named by its config key.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.WithDefaults().Listen); err != nil {
		errs = append(errs, errors.New("listen: "+err.Error()))
	}
	neg := func(key string, bad bool) {
		if bad {
			errs = append(errs, errors.New(key+": must not be negative"))
		}
	}
	cc := c.Client
	neg("shutdown_timeout", c.ShutdownTimeout < 0)
	neg("client.max_clients", cc.MaxClients < 0)
	neg("client.idle_timeout", cc.IdleTimeout < 0)
	neg("client.max_bulk_len", cc.MaxBulkLen < 0)
	neg("client.max_multibulk_len", cc.MaxMultibulkLen < 0)
	neg("client.max_inline_size", cc.MaxInlineSize < 0)
	neg("client.query_buffer_limit", cc.QueryBufferLimit < 0)
	neg("client.output_buffer_limit", cc.OutputBufferLimit < 0)
	neg("client.output_buffer_soft_limit", cc.OutputBufferSoftLimit < 0)
	neg("client.output_buffer_soft_time", cc.OutputBufferSoftTime < 0)
	neg("client.max_pending", cc.MaxPending < 0)
	neg("client.write_timeout", cc.WriteTimeout < 0)
	return errors.Join(errs...)
}

func (c ClientConfig) limits() resp.Limits {
	return resp.Limits{
		MaxBulkLen: c.MaxBulkLen, MaxMultibulkLen: c.MaxMultibulkLen,
		MaxInlineSize: c.MaxInlineSize, MaxQueryBuffer: c.QueryBufferLimit,
	}
}
