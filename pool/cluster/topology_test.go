package cluster

import (
	"slices"
	"testing"
	"time"
)

// offlineCluster is a Cluster whose map is set by hand: its pools never
// dial unless used.
func offlineCluster(t *testing.T, cfg Config, layout []shardLayout) *Cluster {
	t.Helper()
	c := newCluster(cfg.WithDefaults(), nil)
	t.Cleanup(c.Close)
	if err := c.install(layout); err != nil {
		t.Fatal(err)
	}
	return c
}

func threeShards() []shardLayout {
	return []shardLayout{
		{ranges: [][2]int{{10923, 16383}}, primary: "c:1", replicas: []string{"c:2"}},
		{ranges: [][2]int{{0, 5460}}, primary: "a:1", replicas: []string{"a:2", "a:3"}},
		{ranges: [][2]int{{5461, 10922}}, primary: "b:1"},
	}
}

func TestPrimariesAreOrderedByLowestSlot(t *testing.T) {
	c := offlineCluster(t, Config{}, threeShards())
	pools, addrs := c.Primaries()
	if !slices.Equal(addrs, []string{"a:1", "b:1", "c:1"}) || len(pools) != 3 {
		t.Fatalf("Primaries() = %v", addrs)
	}
	for i, p := range pools {
		if p.Config().Address != addrs[i] {
			t.Fatalf("pool %d is for %s, not %s", i, p.Config().Address, addrs[i])
		}
	}
	if info := c.Info(); info.Shards != 3 || info.SlotsServed != Slots {
		t.Fatalf("Info() = %+v", info)
	}
}

func TestPrimaryAndReaderFollowTheMap(t *testing.T) {
	c := offlineCluster(t, Config{ReadFrom: ReadPreferReplica}, threeShards())
	for _, tc := range []struct {
		slot           int
		primary, reads string
	}{
		{0, "a:1", "a:2"}, {1, "a:1", "a:3"}, {5461, "b:1", "b:1"}, {16383, "c:1", "c:2"},
	} {
		p, addr := c.Primary(tc.slot)
		if addr != tc.primary || p.Config().Address != tc.primary {
			t.Errorf("Primary(%d) = %s", tc.slot, addr)
		}
		r := c.Reader(tc.slot)
		if r.Config().Address != tc.reads || r.Config().ReadOnly != (tc.reads != tc.primary) {
			t.Errorf("Reader(%d) is for %s (ReadOnly %v), want %s", tc.slot, r.Config().Address, r.Config().ReadOnly, tc.reads)
		}
	}
	if p, addr := c.Primary(Slots); p != nil || addr != "" {
		t.Errorf("Primary(Slots) = %v, %q", p, addr)
	}
}

func TestReaderIsThePrimaryWhenReadingFromPrimaries(t *testing.T) {
	c := offlineCluster(t, Config{}, threeShards())
	p, _ := c.Primary(0)
	if c.Reader(0) != p {
		t.Fatal("Reader(0) is not the primary's pool")
	}
}

func TestUnservedSlotsHaveNoPrimary(t *testing.T) {
	c := offlineCluster(t, Config{}, []shardLayout{{ranges: [][2]int{{0, 99}}, primary: "a:1"}})
	if p, _ := c.Primary(100); p != nil || c.Reader(100) != nil {
		t.Fatal("slot 100 is served")
	}
	if info := c.Info(); info.SlotsServed != 100 {
		t.Fatalf("SlotsServed = %d", info.SlotsServed)
	}
}

func TestMovedChangesTheMapAtOnce(t *testing.T) {
	c := offlineCluster(t, Config{}, threeShards())
	c.Moved(0, "b:1")
	if _, addr := c.Primary(0); addr != "b:1" {
		t.Fatalf("after MOVED to b:1, slot 0 is served by %s", addr)
	}
	if _, addr := c.Primary(1); addr != "a:1" {
		t.Fatalf("slot 1 moved along: %s", addr)
	}
	c.Moved(16383, "d:1") // a node not in the map
	p, addr := c.Primary(16383)
	if addr != "d:1" || p != c.Node("d:1") {
		t.Fatalf("after MOVED to d:1, slot 16383 is served by %s", addr)
	}
	if _, addrs := c.Primaries(); !slices.Equal(addrs, []string{"b:1", "a:1", "c:1", "d:1"}) {
		t.Fatalf("Primaries() = %v", addrs)
	}
	select {
	case <-c.trigger:
	default:
		t.Fatal("MOVED did not schedule a refresh")
	}
}

func TestMovedAllocatesNothingWhenTheMapAgrees(t *testing.T) {
	c := offlineCluster(t, Config{}, threeShards())
	allocs := testing.AllocsPerRun(100, func() { c.Moved(0, "a:1") })
	if allocs != 0 {
		t.Fatalf("Moved to the known owner allocates %v times", allocs)
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	c := offlineCluster(t, Config{ReadFrom: ReadReplica}, threeShards())
	key := []byte("{user1000}.following")
	allocs := testing.AllocsPerRun(1000, func() {
		slot := Slot(key)
		c.Primary(slot)
		c.Reader(slot)
		c.Primaries()
		c.Node("b:1")
	})
	if allocs != 0 {
		t.Fatalf("Slot/Primary/Reader/Primaries/Node allocate %v times", allocs)
	}
}

func TestPoolsLeavingTheMapAreClosedAfterAGrace(t *testing.T) {
	c := offlineCluster(t, Config{ReadFrom: ReadReplica}, threeShards())
	gone, _ := c.Primary(5461) // b:1
	c.mu.Lock()
	defer c.mu.Unlock()
	two := threeShards()[:2]
	t0 := time.Now()
	next := c.build(two)
	if closed := c.pools.retire(next, t0, time.Minute); len(closed) != 0 {
		t.Fatalf("%d pools closed at once", len(closed))
	}
	if closed := c.pools.retire(next, t0.Add(59*time.Second), time.Minute); len(closed) != 0 {
		t.Fatalf("%d pools closed before the grace", len(closed))
	}
	closed := c.pools.retire(next, t0.Add(time.Minute), time.Minute)
	for _, p := range closed {
		p.Close()
	}
	if len(closed) != 1 || closed[0] != gone {
		t.Fatalf("closed %v, want b:1's pool", closed)
	}
}

func BenchmarkPrimary(b *testing.B) {
	c := newCluster(Config{}.WithDefaults(), nil)
	defer c.Close()
	if err := c.install(threeShards()); err != nil {
		b.Fatal(err)
	}
	key := []byte("{user1000}.following")
	b.ReportAllocs()
	for b.Loop() {
		c.Primary(Slot(key))
	}
}
