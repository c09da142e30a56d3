package redistest

import (
	"testing"
	"time"
)

func TestStartClusterSettlesWithEverySlotServed(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, 3, 1)
	t.Logf("cluster of %d nodes settled in %s", len(c.Nodes), time.Since(start))
	prim := c.Primaries()
	if len(prim) != 3 {
		t.Fatalf("%d primaries, want 3", len(prim))
	}
	for _, slot := range []int{0, 5460, 5461, 16383} {
		if c.NodeForSlot(slot) == nil || len(c.ReplicasForSlot(slot)) != 1 {
			t.Fatalf("slot %d: primary %v, replicas %v", slot, c.NodeForSlot(slot), c.ReplicasForSlot(slot))
		}
	}
}
