package redistest

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tidwall "github.com/tidwall/resp"
)

// Cluster is a Redis Cluster of redis-server processes owned by one test,
// all stopped by t.Cleanup. Nodes never changes; which of them are primaries
// does (after a failover), so ask Primaries or NodeForSlot.
type Cluster struct {
	Nodes []*Server // primaries first, as created; then the replicas

	t testing.TB
}

// clusterArgs are the redis-server arguments of every cluster node: a short
// node timeout, and diskless replication without the 5 s default delay, so
// replicas sync at once.
var clusterArgs = []string{
	"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
	"--cluster-node-timeout", "2000", "--cluster-announce-ip", "127.0.0.1",
	"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
}

// settleTimeout bounds every wait of the cluster helpers.
const settleTimeout = 20 * time.Second

// StartCluster starts primaries*(1+replicasPerPrimary) cluster-enabled
// servers (extra are passed to each; they must not require AUTH), splits the
// 16384 slots evenly over the primaries, attaches replicasPerPrimary replicas
// to each, and returns once the cluster has settled (see WaitSettled). It
// forms the cluster with CLUSTER ADDSLOTSRANGE / SET-CONFIG-EPOCH / MEET /
// REPLICATE, as redis-cli --cluster create does, minus its one-second sleeps.
// Like Start, it skips the test when redis-server is missing (fails under CI).
// It takes a little over 2 s: a Redis primary keeps cluster_state:fail for
// its first 2 s (CLUSTER_WRITABLE_DELAY).
func StartCluster(t testing.TB, primaries, replicasPerPrimary int, extra ...string) *Cluster {
	t.Helper()
	if primaries < 1 || replicasPerPrimary < 0 {
		t.Fatalf("StartCluster(%d, %d): need at least one primary", primaries, replicasPerPrimary)
	}
	c := &Cluster{t: t}
	args := append(slices.Clone(clusterArgs), extra...)
	for range primaries * (1 + replicasPerPrimary) {
		c.Nodes = append(c.Nodes, Start(t, args...))
	}
	c.assignSlots(primaries)
	c.meet()
	c.attachReplicas(primaries)
	c.WaitSettled()
	return c
}

// assignSlots gives each primary an even share of the slots and a distinct
// config epoch (so no epoch collision has to be resolved later).
func (c *Cluster) assignSlots(primaries int) {
	for i, s := range c.Nodes {
		if i < primaries {
			lo, hi := i*16384/primaries, (i+1)*16384/primaries-1
			c.must(s.Addr, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi))
		}
		c.must(s.Addr, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1))
	}
}

// meet introduces every node to every other directly, which is quicker than
// waiting for gossip to spread the news.
func (c *Cluster) meet() {
	for i, a := range c.Nodes {
		for _, b := range c.Nodes[i+1:] {
			c.must(a.Addr, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(b.Port))
		}
	}
}

// attachReplicas makes node primaries+k a replica of primary k%primaries. A
// replica can only follow a primary it has heard of, so each REPLICATE is
// retried (each try a real command) until the handshake is done.
//
// Redis 7.0 leaves a replica out of CLUSTER SLOTS (and marks it "loading" in
// CLUSTER SHARDS) while its replication offset is 0, which lasts until its
// primary propagates something: the 10 s replication PING by default. So
// once the replicas are linked, each primary runs FLUSHALL, which is always
// propagated, to move the offsets at once.
func (c *Cluster) attachReplicas(primaries int) {
	replicas := c.Nodes[primaries:]
	for i, s := range replicas {
		id := c.must(c.Nodes[i%primaries].Addr, "CLUSTER", "MYID")
		c.poll(fmt.Sprintf("%s to replicate %s", s.Addr, id), func() error {
			_, err := Do(s.Addr, "CLUSTER", "REPLICATE", id)
			return err
		})
	}
	for _, s := range replicas {
		c.poll(s.Addr+" to link to its primary", func() error { return linkUp(s.Addr, true) })
	}
	for _, s := range c.Nodes[:primaries] {
		c.must(s.Addr, "FLUSHALL")
	}
}

// WaitSettled waits (polling, bounded) until every node reports
// cluster_state:ok, every node's CLUSTER SLOTS lists all the nodes and is
// the same as every other's, and every replica's link to its primary is up.
// Call it after changing the topology (e.g. a failover) so a test does not
// see the transient redirects of a cluster still gossiping.
func (c *Cluster) WaitSettled() {
	c.t.Helper()
	c.poll("cluster to settle", c.settled)
}

// settled returns why the cluster has not settled yet, or nil.
func (c *Cluster) settled() error {
	var first string
	for _, s := range c.Nodes {
		info, err := Do(s.Addr, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state not ok", s.Addr)
		}
		view, err := c.slotsView(s.Addr)
		if err != nil {
			return err
		}
		if first == "" {
			first = view
		} else if view != first {
			return fmt.Errorf("%s disagrees on CLUSTER SLOTS:\n%s\nvs\n%s", s.Addr, view, first)
		}
		if err := linkUp(s.Addr, false); err != nil {
			return err
		}
	}
	return nil
}

// linkUp returns an error while the node at addr is a replica whose
// replication link is not up, or (with mustReplicate) is not a replica.
func linkUp(addr string, mustReplicate bool) error {
	repl, err := Do(addr, "INFO", "replication")
	if err != nil {
		return err
	}
	replica := strings.Contains(repl, "role:slave")
	if mustReplicate && !replica {
		return fmt.Errorf("%s: not a replica yet", addr)
	}
	if replica && !strings.Contains(repl, "master_link_status:up") {
		return fmt.Errorf("%s: replication link not up", addr)
	}
	return nil
}

// slotsView renders addr's CLUSTER SLOTS as one line per range ("lo-hi
// primary replica..." with replicas sorted), sorted, and checks that it names
// every node.
func (c *Cluster) slotsView(addr string) (string, error) {
	ranges, err := clusterSlots(addr)
	if err != nil {
		return "", err
	}
	var lines []string
	seen := map[string]bool{}
	for _, r := range ranges {
		lines = append(lines, fmt.Sprintf("%d-%d %s %v", r.lo, r.hi, r.primary, r.replicas))
		seen[r.primary] = true
		for _, a := range r.replicas {
			seen[a] = true
		}
	}
	if len(seen) != len(c.Nodes) {
		return "", fmt.Errorf("%s: CLUSTER SLOTS names %d of %d nodes", addr, len(seen), len(c.Nodes))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// slotRange is one entry of CLUSTER SLOTS.
type slotRange struct {
	lo, hi   int
	primary  string
	replicas []string // sorted
}

// clusterSlots runs CLUSTER SLOTS on addr.
func clusterSlots(addr string) ([]slotRange, error) {
	v, err := DoValue(addr, "CLUSTER", "SLOTS")
	if err != nil {
		return nil, err
	}
	var out []slotRange
	for _, e := range v.Array() {
		a := e.Array()
		if len(a) < 3 {
			return nil, fmt.Errorf("%s: short CLUSTER SLOTS entry %v", addr, a)
		}
		r := slotRange{lo: a[0].Integer(), hi: a[1].Integer(), primary: nodeAddr(a[2])}
		for _, n := range a[3:] {
			r.replicas = append(r.replicas, nodeAddr(n))
		}
		slices.Sort(r.replicas)
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y slotRange) int { return x.lo - y.lo })
	return out, nil
}

// nodeAddr is host:port of a CLUSTER SLOTS node entry.
func nodeAddr(n tidwall.Value) string {
	a := n.Array()
	if len(a) < 2 {
		return "?"
	}
	return net.JoinHostPort(a[0].String(), a[1].String())
}

// Addrs returns the address of every node, primaries first as created.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Server returns the node listening on addr, or nil.
func (c *Cluster) Server(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Primaries returns the current primaries that serve slots, ordered by their
// lowest slot, as the first node that answers CLUSTER SLOTS sees them.
func (c *Cluster) Primaries() []*Server {
	c.t.Helper()
	var out []*Server
	for _, r := range c.ranges() {
		if s := c.Server(r.primary); s != nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// NodeForSlot returns the current primary of slot, or nil if none serves it.
func (c *Cluster) NodeForSlot(slot int) *Server {
	c.t.Helper()
	if r, ok := c.rangeOf(slot); ok {
		return c.Server(r.primary)
	}
	return nil
}

// ReplicasForSlot returns the current replicas of slot's primary.
func (c *Cluster) ReplicasForSlot(slot int) []*Server {
	c.t.Helper()
	r, _ := c.rangeOf(slot)
	var out []*Server
	for _, a := range r.replicas {
		if s := c.Server(a); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) rangeOf(slot int) (slotRange, bool) {
	for _, r := range c.ranges() {
		if r.lo <= slot && slot <= r.hi {
			return r, true
		}
	}
	return slotRange{}, false
}

// ranges returns CLUSTER SLOTS from the first node that answers.
func (c *Cluster) ranges() []slotRange {
	c.t.Helper()
	var errs []string
	for _, s := range c.Nodes {
		r, err := clusterSlots(s.Addr)
		if err == nil {
			return r
		}
		errs = append(errs, err.Error())
	}
	c.t.Fatalf("no node answered CLUSTER SLOTS: %s", strings.Join(errs, "; "))
	return nil
}

// Failover promotes a replica of slot's primary with CLUSTER FAILOVER (sent
// to the replica), waits until the cluster has settled around the new
// primary, and returns it.
func (c *Cluster) Failover(slot int) *Server {
	c.t.Helper()
	old := c.NodeForSlot(slot)
	replicas := c.ReplicasForSlot(slot)
	if old == nil || len(replicas) == 0 {
		c.t.Fatalf("slot %d has no primary with a replica to fail over to", slot)
	}
	promoted := replicas[0]
	c.must(promoted.Addr, "CLUSTER", "FAILOVER")
	c.poll(promoted.Addr+" to become primary", func() error {
		if err := c.settled(); err != nil {
			return err
		}
		if c.NodeForSlot(slot) != promoted {
			return fmt.Errorf("slot %d not yet served by %s", slot, promoted.Addr)
		}
		return nil
	})
	return promoted
}

// poll calls f until it returns nil, at most settleTimeout; each attempt is
// a real query, spaced by a short pause so the nodes are not flooded.
func (c *Cluster) poll(what string, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// must runs a command and fails the test on an error.
func (c *Cluster) must(addr string, args ...string) string {
	c.t.Helper()
	s, err := Do(addr, args...)
	if err != nil {
		c.t.Fatalf("%s %v: %v", addr, args, err)
	}
	return s
}
