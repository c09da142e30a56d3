package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/pool"
)

// ErrClosed is returned by RefreshNow after Close.
var ErrClosed = errors.New("cluster: closed")

// Cluster routes by slot to the pools of a Redis Cluster's nodes, and keeps
// its slot map current: periodically, on MOVED, and on demand. Callers MUST
// call Close.
//
// Primary, Reader and Primaries read an immutable snapshot through an atomic
// pointer: no lock, no allocation. Writers of the snapshot (refreshes, Moved)
// hold mu; refreshes are serialised by refreshMu, which is held while nodes
// are queried, so mu is only ever held briefly.
type Cluster struct {
	cfg Config
	log *slog.Logger

	topo atomic.Pointer[topology]

	mu    sync.Mutex // guards pools and the swapping of topo
	pools *registry

	refreshMu sync.Mutex // serialises refreshes; guards lastGood
	lastGood  string     // node that answered the last refresh, asked first next time

	// Counters and state read by Info and by fetch.
	noShards      atomic.Bool // a node refused CLUSTER SHARDS: use CLUSTER SLOTS
	refreshes     atomic.Int64
	refreshErrors atomic.Int64
	lastRefresh   atomic.Int64           // unix nanoseconds of the last success
	lastError     atomic.Pointer[string] // of the last refresh; nil after a success

	trigger   chan struct{} // cap 1: a refresh is wanted
	ctx       context.Context
	cancel    context.CancelFunc // ends a refresh in progress at Close
	wg        sync.WaitGroup     // the refresh goroutine and retired pools' closers
	closeOnce sync.Once
}

// New fetches the topology from the first seed that answers (CLUSTER SHARDS,
// falling back to CLUSTER SLOTS when the command is unknown) and returns a
// Cluster refreshing it in the background. log may be nil. Callers MUST call
// Close.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Cluster, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := newCluster(cfg, log)
	if err := c.RefreshNow(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.refreshLoop()
	return c, nil
}

// newCluster returns a Cluster with no topology and no refresh goroutine.
func newCluster(cfg Config, log *slog.Logger) *Cluster {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: cfg, log: log, pools: newRegistry(cfg), trigger: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Primary returns the pool of the primary serving slot and its address; nil
// and "" when no node serves the slot (or slot is out of range). The pool
// belongs to the Cluster: do not close it.
func (c *Cluster) Primary(slot int) (*pool.Pool, string) {
	if sh := c.topo.Load().shardOf(slot); sh != nil {
		return sh.primary, sh.addr
	}
	return nil, ""
}

// Reader returns the pool to send a read-only command for slot to: with
// ReadFrom "replica" or "prefer-replica", the READONLY pool of one of the
// shard's healthy replicas (the same one for a given slot); otherwise, or
// while the shard has no healthy replica, the primary's. nil when no node
// serves the slot.
func (c *Cluster) Reader(slot int) *pool.Pool {
	sh := c.topo.Load().shardOf(slot)
	switch {
	case sh == nil:
		return nil
	case len(sh.readers) > 0:
		return sh.readers[slot%len(sh.readers)]
	default:
		return sh.primary
	}
}

// ReadsReplicas reports whether Reader may pick replicas (read_from is not
// primary), so callers can skip asking whether a command is read-only.
func (c *Cluster) ReadsReplicas() bool { return c.cfg.ReadFrom != ReadPrimary }

// Node returns the pool of the node at addr (as a primary: no READONLY),
// creating it if it is not known yet, as for ASK and MOVED targets. A pool
// that no topology uses is closed some refreshes later (RefreshInterval
// after it was last asked for). nil after Close or when addr is not
// host:port.
func (c *Cluster) Node(addr string) *pool.Pool {
	t := c.topo.Load()
	if i := t.find(addr); i >= 0 {
		return t.shards[i].primary
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pools.get(poolKey{addr: addr})
}

// Primaries returns the pools of the primaries that serve slots, ordered by
// the lowest slot each serves (stable between topology changes), and their
// addresses. The slices are shared: do not modify them.
func (c *Cluster) Primaries() ([]*pool.Pool, []string) {
	t := c.topo.Load()
	return t.primaries, t.addrs
}

// Moved records a MOVED redirect: slot is now served by the primary at addr.
// The map changes at once and a refresh is scheduled to learn the rest; a
// redirect the map already agrees with does nothing, so a storm of them
// makes one refresh. A refresh already querying nodes may still install
// what it learned before the redirect; the scheduled one corrects it.
func (c *Cluster) Moved(slot int, addr string) {
	if uint(slot) >= Slots {
		return
	}
	if _, known := c.Primary(slot); known == addr {
		return // a later redirect of a command sent before the map changed
	}
	c.mu.Lock()
	c.moveLocked(slot, addr)
	c.mu.Unlock()
	c.Refresh()
}

// moveLocked installs a copy of the topology in which addr serves slot.
// Caller must hold mu.
func (c *Cluster) moveLocked(slot int, addr string) {
	cur := c.topo.Load()
	if sh := cur.shardOf(slot); sh != nil && sh.addr == addr {
		return
	}
	shards := append([]shard(nil), cur.shards...)
	i := cur.find(addr)
	if i < 0 {
		p := c.pools.get(poolKey{addr: addr})
		if p == nil {
			return
		}
		shards, i = append(shards, shard{addr: addr, primary: p}), len(shards)
	}
	slots := cur.slots
	slots[slot] = uint16(i + 1)
	c.topo.Store(newTopology(shards, &slots))
}

// Stats sums the pool.Stats of every node's pool.
func (c *Cluster) Stats() pool.Stats {
	c.mu.Lock()
	pools := c.pools.all()
	c.mu.Unlock()
	var sum pool.Stats
	for _, p := range pools {
		s := p.Stats()
		sum.Total += s.Total
		sum.Idle += s.Idle
		sum.Acquired += s.Acquired
		sum.Constructing += s.Constructing
		sum.Shared += s.Shared
		sum.AcquireCount += s.AcquireCount
		sum.EmptyAcquires += s.EmptyAcquires
		sum.CanceledAcquires += s.CanceledAcquires
		sum.AcquireWait += s.AcquireWait
		sum.Dials += s.Dials
		sum.DialErrors += s.DialErrors
		sum.Reconnects += s.Reconnects
		sum.BreakersOpen += s.BreakersOpen
	}
	return sum
}

// Info is a summary of the cluster for INFO.
type Info struct {
	Nodes         int       // node pools open (primaries, replicas read from, redirect targets)
	Shards        int       // shards serving slots
	SlotsServed   int       // of Slots
	Refreshes     int64     // successful topology refreshes, the one in New included
	RefreshErrors int64     // failed ones
	LastRefresh   time.Time // of the last success
	LastError     string    // of the last refresh; "" if it succeeded
}

// Info returns a summary of the cluster.
func (c *Cluster) Info() Info {
	t := c.topo.Load()
	c.mu.Lock()
	nodes := len(c.pools.pools)
	c.mu.Unlock()
	info := Info{
		Nodes: nodes, Shards: len(t.primaries), SlotsServed: t.served,
		Refreshes: c.refreshes.Load(), RefreshErrors: c.refreshErrors.Load(),
		LastRefresh: time.Unix(0, c.lastRefresh.Load()),
	}
	if e := c.lastError.Load(); e != nil {
		info.LastError = *e
	}
	return info
}

// Close stops refreshing and closes every node's pool (as pool.Pool.Close:
// in-flight commands get error replies). It is idempotent.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.cancel() // ends the refresh goroutine and aborts its queries
		c.refreshMu.Lock()
		c.mu.Lock()
		pools := c.pools.closeAll() // from now on, refreshes install nothing
		c.mu.Unlock()
		c.refreshMu.Unlock()
		c.wg.Wait()
		for _, p := range pools {
			p.Close()
		}
	})
}
