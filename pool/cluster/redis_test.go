package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// connect returns a Cluster for cfg, closed by t.Cleanup.
func connect(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
}

func TestAgainstARealCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3, 1)

	t.Run("New from one seed finds every shard and slot", func(t *testing.T) {
		c := connect(t, Config{Seeds: []string{rc.Nodes[4].Addr}}) // a replica, even
		info := c.Info()
		if info.Shards != 3 || info.SlotsServed != Slots || info.Refreshes != 1 {
			t.Fatalf("Info() = %+v", info)
		}
		_, addrs := c.Primaries()
		for i, s := range rc.Primaries() {
			if addrs[i] != s.Addr {
				t.Fatalf("Primaries() = %v, want %v first", addrs, s.Addr)
			}
		}
	})

	t.Run("Primary is the slot's owner per CLUSTER SLOTS", func(t *testing.T) {
		c := connect(t, Config{Seeds: rc.Addrs()})
		for slot := 0; slot < Slots; slot += 97 {
			if _, addr := c.Primary(slot); addr != rc.NodeForSlot(slot).Addr {
				t.Fatalf("Primary(%d) = %s, CLUSTER SLOTS says %s", slot, addr, rc.NodeForSlot(slot).Addr)
			}
		}
	})

	t.Run("a dead seed is skipped", func(t *testing.T) {
		c := connect(t, Config{Seeds: []string{deadAddr(t), rc.Nodes[0].Addr}})
		if c.Info().Shards != 3 {
			t.Fatalf("Info() = %+v", c.Info())
		}
	})

	t.Run("New fails when no seed answers", func(t *testing.T) {
		_, err := New(context.Background(), Config{Seeds: []string{deadAddr(t)}}, nil)
		if err == nil {
			t.Fatal("New with only a dead seed succeeded")
		}
	})

	t.Run("a replica's pool reads with READONLY", func(t *testing.T) {
		c := connect(t, Config{Seeds: rc.Addrs(), ReadFrom: ReadReplica})
		key := "{reader}k"
		slot := Slot([]byte(key))
		primary := rc.NodeForSlot(slot)
		mustDo(t, primary.Addr, "SET", key, "v")
		mustDo(t, primary.Addr, "WAIT", "1", "5000")
		r := c.Reader(slot)
		if p, _ := c.Primary(slot); r == p || r.Config().Address != rc.ReplicasForSlot(slot)[0].Addr {
			t.Fatalf("Reader(%d) is for %s, not the replica", slot, r.Config().Address)
		}
		if _, err := redistest.Do(r.Config().Address, "GET", key); !redistest.IsReplyError(err, "MOVED") {
			t.Fatalf("without READONLY the replica answered %v, not MOVED", err)
		}
		if got := sharedCommand(t, r, "GET", key); got != "$1\r\nv\r\n" {
			t.Fatalf("GET on the replica's pool = %q", got)
		}
	})

	t.Run("Moved changes the map at once and the refresh restores it", func(t *testing.T) {
		c := connect(t, Config{Seeds: rc.Addrs()})
		_, owner := c.Primary(0)
		_, other := c.Primary(16383)
		before := c.Info().Refreshes
		c.Moved(0, other)
		// Moved also starts a background refresh, which restores the real
		// owner; only a read made before that refresh lands says anything.
		if _, addr := c.Primary(0); addr != other && c.Info().Refreshes == before {
			t.Fatalf("after MOVED, slot 0 is served by %s, want %s", addr, other)
		}
		if err := c.RefreshNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, addr := c.Primary(0); addr != owner {
			t.Fatalf("after a refresh, slot 0 is served by %s, want %s", addr, owner)
		}
	})

	t.Run("CLUSTER SLOTS gives the map CLUSTER SHARDS gives", func(t *testing.T) {
		c := connect(t, Config{Seeds: rc.Addrs(), ReadFrom: ReadReplica})
		want := snapshot(c)
		c.noShards.Store(true) // as after Redis 6.2 refused CLUSTER SHARDS
		if err := c.RefreshNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(c); got != want {
			t.Fatalf("from CLUSTER SLOTS:\n%s\nfrom CLUSTER SHARDS:\n%s", got, want)
		}
	})

	t.Run("lookups race with refreshes and redirects", func(t *testing.T) {
		c := connect(t, Config{Seeds: rc.Addrs(), ReadFrom: ReadReplica})
		_, addrs := c.Primaries()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if p, _ := c.Primary(i % Slots); p == nil || c.Reader(i%Slots) == nil {
						t.Error("a slot went unserved")
						return
					}
				}
			})
		}
		for i := range 5 {
			c.Moved(i, addrs[i%len(addrs)])
			if err := c.RefreshNow(context.Background()); err != nil {
				t.Error(err)
			}
		}
		close(stop)
		wg.Wait()
	})

	t.Run("Stats sums the node pools", func(t *testing.T) {
		c := connect(t, Config{Seeds: rc.Addrs()})
		pools, _ := c.Primaries()
		for _, p := range pools {
			sharedCommand(t, p, "PING")
		}
		if s := c.Stats(); s.Shared != 3 || s.Dials != 3 {
			t.Fatalf("Stats() = %+v, want 3 shared connections from 3 dials", s)
		}
	})
}

func TestRefreshFollowsTopologyChanges(t *testing.T) {
	rc := redistest.StartCluster(t, 3, 1)
	c := connect(t, Config{Seeds: []string{rc.Nodes[0].Addr}, ReadFrom: ReadPreferReplica})

	t.Run("after CLUSTER FAILOVER the replica is the primary", func(t *testing.T) {
		key := "{failover}k"
		slot := Slot([]byte(key))
		old := rc.NodeForSlot(slot)
		promoted := rc.Failover(slot)
		if err := c.RefreshNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, addr := c.Primary(slot); addr != promoted.Addr {
			t.Fatalf("after the failover, Primary(%d) = %s, want %s (was %s)", slot, addr, promoted.Addr, old.Addr)
		}
		if r := c.Reader(slot); r.Config().Address != old.Addr || !r.Config().ReadOnly {
			t.Fatalf("after the failover, Reader(%d) is for %s, want the old primary %s", slot, r.Config().Address, old.Addr)
		}
		if got := sharedCommand(t, c.Node(promoted.Addr), "SET", key, "1"); got != "+OK\r\n" {
			t.Fatalf("SET on the new primary = %q", got)
		}
	})

	t.Run("with every node down a refresh fails and keeps the map", func(t *testing.T) {
		before := c.Info()
		_, addrs := c.Primaries()
		for _, s := range rc.Nodes {
			s.Stop()
		}
		if err := c.RefreshNow(context.Background()); err == nil {
			t.Fatal("a refresh with every node down succeeded")
		}
		if _, now := c.Primaries(); !slices.Equal(now, addrs) {
			t.Fatalf("after a failed refresh, Primaries() = %v, want %v", now, addrs)
		}
		if info := c.Info(); info.RefreshErrors != before.RefreshErrors+1 || info.LastError == "" || info.SlotsServed != Slots {
			t.Fatalf("Info() = %+v", info)
		}
	})
}

// snapshot renders who serves every slot, and whom Reader picks.
func snapshot(c *Cluster) string {
	var b strings.Builder
	for slot := range Slots {
		_, addr := c.Primary(slot)
		fmt.Fprintf(&b, "%d %s %s\n", slot, addr, c.Reader(slot).Config().Address)
	}
	return b.String()
}

func mustDo(t *testing.T, addr string, args ...string) string {
	t.Helper()
	s, err := redistest.Do(addr, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", addr, args, err)
	}
	return s
}

// sharedCommand sends one command on p's shared connection and returns the
// raw reply.
func sharedCommand(t *testing.T, p *pool.Pool, args ...string) string {
	t.Helper()
	pipe, err := p.Shared(context.Background(), 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &reply{done: make(chan struct{})}
	raw := make([][]byte, len(args))
	for i, a := range args {
		raw[i] = []byte(a)
	}
	if err := pipe.Send(r, 1, nil, raw); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("no reply to %v", args)
	}
	return string(r.b)
}

// reply is a pool.Target that keeps one whole reply.
type reply struct {
	mu   sync.Mutex
	b    []byte
	done chan struct{}
}

func (r *reply) Deliver(_ uint64, p []byte, last bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.b = append(r.b, p...)
	if last {
		close(r.done)
	}
}
func (r *reply) DeliverPush([]byte, bool) {}
func (r *reply) Abort(err error)          { panic(fmt.Sprintf("bug: reply aborted: %v", err)) }
