package sentinel

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/respguard/respguard/pool"
)

// Config says how to reach the sentinels and which primary to ask them for.
// The zero value of each field means the default given beside it; the data
// nodes' own credentials and TLS are in the pool.Config passed to New.
type Config struct {
	Addresses   []string      // sentinels, host:port, asked in this order (upstream.addresses; required)
	MasterName  string        // the name the sentinels monitor the primary under (upstream.sentinel.master_name; required)
	Username    string        // ACL user for AUTH on the sentinels; empty = "default"
	Password    string        // for the sentinels (their requirepass); empty = no AUTH
	DialTimeout time.Duration // connect plus reply, per sentinel query (2s)

	// TLS, when non-nil, is used to dial the sentinels. An empty ServerName
	// means the host of each sentinel's address.
	TLS *tls.Config
}

// DefaultDialTimeout bounds each query to a sentinel or a data node.
const DefaultDialTimeout = 2 * time.Second

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// Validate reports every invalid field, named by its config key.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addresses) == 0 {
		errs = append(errs, errors.New("upstream.addresses: at least one sentinel address is required"))
	}
	for i, a := range c.Addresses {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("upstream.addresses[%d]: %w", i, err))
		}
	}
	if c.MasterName == "" {
		errs = append(errs, errors.New("upstream.sentinel.master_name: required with sentinels"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("upstream.sentinel.dial_timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// controlConfig is the pool.Config for request/response queries to the
// sentinel at addr.
func (c Config) controlConfig(addr string) pool.Config {
	return pool.Config{
		Address: addr, Username: c.Username, Password: c.Password,
		DialTimeout: c.DialTimeout, TLS: c.tlsFor(addr),
	}
}

// tlsFor returns the TLS configuration for the sentinel at addr: c.TLS,
// naming addr's host as the server when c.TLS names none. nil = plain TCP.
func (c Config) tlsFor(addr string) *tls.Config {
	if c.TLS == nil || c.TLS.ServerName != "" {
		return c.TLS
	}
	tc := c.TLS.Clone()
	tc.ServerName, _, _ = net.SplitHostPort(addr)
	return tc
}
