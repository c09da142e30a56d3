package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// minRefreshGap spaces refreshes asked for by Refresh and Moved, so a storm
// of redirects during resharding costs a few refreshes a second at most.
const minRefreshGap = 200 * time.Millisecond

// Refresh schedules a topology refresh and returns at once. Calls made while
// one is pending or running coalesce into one more.
func (c *Cluster) Refresh() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// refreshLoop refreshes every RefreshInterval and when triggered, until
// Close.
func (c *Cluster) refreshLoop() {
	defer c.wg.Done()
	ticker := time.NewTicker(c.cfg.RefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-ticker.C:
		case <-c.trigger:
		}
		_ = c.RefreshNow(c.ctx) // logged and counted by RefreshNow
		if !c.pace() {
			return
		}
	}
}

// pace waits minRefreshGap; false if the Cluster closed meanwhile.
func (c *Cluster) pace() bool {
	t := time.NewTimer(minRefreshGap)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// RefreshNow fetches the topology from the first node that answers (the one
// that answered last time, then the known primaries, replicas, and seeds)
// and installs it. On failure the current map stays.
func (c *Cluster) RefreshNow(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(c.ctx, stop)() // Close cuts the refresh short
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	layout, from, err := c.fetchAny(ctx, c.candidates())
	if err == nil {
		err = c.install(layout)
	}
	if err != nil && c.ctx.Err() != nil {
		return ErrClosed // Close cut the refresh short: nothing to report
	}
	if err != nil {
		c.refreshFailed(err)
		return err
	}
	c.lastGood = from
	c.refreshes.Add(1)
	c.lastRefresh.Store(time.Now().UnixNano())
	c.lastError.Store(nil)
	return nil
}

// refreshFailed counts and logs a failed refresh.
func (c *Cluster) refreshFailed(err error) {
	c.refreshErrors.Add(1)
	msg := err.Error()
	c.lastError.Store(&msg)
	c.log.Warn("cluster topology refresh failed; keeping the current map", "error", err)
}

// candidates lists the nodes to ask, best first, without duplicates.
// Caller must hold refreshMu.
func (c *Cluster) candidates() []string {
	var out []string
	if c.lastGood != "" {
		out = append(out, c.lastGood)
	}
	if t := c.topo.Load(); t != nil {
		for _, sh := range t.shards {
			out = append(out, sh.addr)
		}
		for _, sh := range t.shards {
			out = append(out, sh.replicas...)
		}
	}
	out = append(out, c.cfg.Seeds...)
	seen := make(map[string]bool, len(out))
	return slices.DeleteFunc(out, func(a string) bool {
		dup := seen[a]
		seen[a] = true
		return dup
	})
}

// fetchAny asks each node in turn (each under the node's dial timeout, so a
// dead one costs little) and returns the first topology that serves slots,
// and who gave it.
func (c *Cluster) fetchAny(ctx context.Context, addrs []string) ([]shardLayout, string, error) {
	var errs []error
	for _, addr := range addrs {
		layout, err := c.fetch(ctx, addr)
		if err == nil && !servesSlots(layout) {
			err = fmt.Errorf("%s serves no slots: not (yet) part of a cluster", addr)
		}
		if err == nil {
			return layout, addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", fmt.Errorf("cluster: no node gave the topology: %w", errors.Join(errs...))
}

func servesSlots(layout []shardLayout) bool {
	for _, l := range layout {
		if l.primary != "" && len(l.ranges) > 0 {
			return true
		}
	}
	return false
}

// install builds the topology of layout, swaps it in, and closes (in the
// background) the pools that have been unused for a while.
func (c *Cluster) install(layout []shardLayout) error {
	c.mu.Lock()
	if c.pools.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	old, t := c.topo.Load(), c.build(layout)
	c.topo.Store(t)
	retired := c.pools.retire(t, time.Now(), c.cfg.RefreshInterval)
	c.mu.Unlock()
	c.logChange(old, t)
	for _, p := range retired {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			p.Close() // waits for dedicated connections still in use
		}()
	}
	return nil
}

// build makes the topology of layout, getting each node's pool. Caller
// must hold mu.
func (c *Cluster) build(layout []shardLayout) *topology {
	var slots [Slots]uint16
	shards := make([]shard, 0, len(layout))
	for _, l := range layout {
		sh, ok := c.newShard(l)
		if !ok {
			continue
		}
		shards = append(shards, sh)
		for _, r := range l.ranges {
			for s := r[0]; s <= r[1]; s++ {
				slots[s] = uint16(len(shards))
			}
		}
	}
	return newTopology(shards, &slots)
}

// newShard makes the shard of l with its pools; false when it has no usable
// primary. Caller must hold mu.
func (c *Cluster) newShard(l shardLayout) (shard, bool) {
	if l.primary == "" {
		return shard{}, false
	}
	p := c.pools.get(poolKey{addr: l.primary})
	if p == nil {
		return shard{}, false
	}
	sh := shard{addr: l.primary, primary: p}
	for _, r := range l.replicas {
		if c.cfg.ReadFrom == ReadPrimary {
			sh.replicas = append(sh.replicas, r)
		} else if rp := c.pools.get(poolKey{addr: r, readOnly: true}); rp != nil {
			sh.replicas, sh.readers = append(sh.replicas, r), append(sh.readers, rp)
		}
	}
	return sh, true
}

// logChange logs when the set or order of serving primaries changed.
func (c *Cluster) logChange(old, t *topology) {
	if old != nil && slices.Equal(old.addrs, t.addrs) {
		return
	}
	c.log.Info("cluster topology", "primaries", t.addrs, "slots_served", t.served)
}
