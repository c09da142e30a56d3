package cluster

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/respguard/respguard/pool"
)

// ReadFrom values: where Reader sends read-only commands.
const (
	ReadPrimary       = "primary"        // the slot's primary (the default)
	ReadReplica       = "replica"        // a replica of the slot's primary
	ReadPreferReplica = "prefer-replica" // a replica, else the primary
)

// DefaultRefreshInterval is how often the topology is refreshed when nothing
// (a MOVED redirect) asks for it sooner.
const DefaultRefreshInterval = 10 * time.Second

// Config describes a Redis Cluster upstream. The zero value of each field
// means the default given beside it.
type Config struct {
	// Seeds are addresses of cluster nodes to fetch the topology from at
	// start, and again when no known node answers (upstream.addresses;
	// empty = Node.Address, itself defaulting to 127.0.0.1:6379).
	Seeds []string
	// Node is the template of every node's pool; its Address is replaced by
	// the node's and ReadOnly is set for replicas.
	Node pool.Config
	// RefreshInterval is the period of the topology refresh (10s).
	RefreshInterval time.Duration
	// ReadFrom is where Reader sends read-only commands: "primary" (the
	// default), "replica" or "prefer-replica". Both replica modes fall back
	// to the primary while the shard has no healthy replica: a proxy has
	// nowhere better to send the read.
	ReadFrom string
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Node = c.Node.WithDefaults()
	if len(c.Seeds) == 0 {
		c.Seeds = []string{c.Node.Address}
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.ReadFrom == "" {
		c.ReadFrom = ReadPrimary
	}
	return c
}

// Validate reports every invalid field, named by its config key.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	for _, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("upstream.addresses: %w", err))
		}
	}
	switch c.ReadFrom {
	case ReadPrimary, ReadReplica, ReadPreferReplica:
	default:
		errs = append(errs, fmt.Errorf("upstream.read_from: %q is not primary, replica or prefer-replica", c.ReadFrom))
	}
	if c.RefreshInterval < 0 {
		errs = append(errs, errors.New("upstream.refresh_interval: must not be negative"))
	}
	node := c.Node
	node.Address = pool.DefaultAddress // replaced per node; seeds are checked above
	if err := node.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// nodeConfig is the pool configuration for the node at addr.
func (c Config) nodeConfig(addr string, readOnly bool) pool.Config {
	n := c.Node
	n.Address, n.ReadOnly = addr, readOnly
	return n
}
