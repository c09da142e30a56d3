package cluster

import (
	"cmp"
	"slices"

	"github.com/respguard/respguard/pool"
)

// topology is an immutable snapshot of the cluster: who serves each slot.
// Cluster swaps whole snapshots, so readers need no lock.
type topology struct {
	slots  [Slots]uint16 // slot -> index in shards plus one; 0 = not served
	shards []shard       // those serving slots by lowest slot, then the rest by address

	// primaries and addrs are those of the shards serving slots, in shard
	// order: Primaries' result, shared by every caller.
	primaries []*pool.Pool
	addrs     []string
	served    int // slots served
}

// shard is one primary and its replicas.
type shard struct {
	addr     string
	primary  *pool.Pool
	replicas []string     // healthy replicas' addresses
	readers  []*pool.Pool // READONLY pools of replicas, same order; nil when ReadFrom is primary
}

// newTopology indexes shards, given slots[s] = index in shards plus one (0 =
// not served). It reorders shards so that Primaries' order depends only on
// the slots each serves.
func newTopology(shards []shard, slots *[Slots]uint16) *topology {
	lowest := make([]int, len(shards))
	for i := range lowest {
		lowest[i] = Slots // serves nothing
	}
	for s := Slots - 1; s >= 0; s-- {
		if i := slots[s]; i != 0 {
			lowest[i-1] = s
		}
	}
	order := make([]int, len(shards))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(lowest[a], lowest[b]), cmp.Compare(shards[a].addr, shards[b].addr))
	})
	return index(shards, slots, order, lowest)
}

// index builds the topology with shards in the given order.
func index(shards []shard, slots *[Slots]uint16, order, lowest []int) *topology {
	t := &topology{shards: make([]shard, len(shards))}
	newIndex := make([]uint16, len(shards))
	for n, old := range order {
		t.shards[n] = shards[old]
		newIndex[old] = uint16(n + 1)
		if lowest[old] < Slots {
			t.primaries = append(t.primaries, shards[old].primary)
			t.addrs = append(t.addrs, shards[old].addr)
		}
	}
	for s, i := range slots {
		if i != 0 {
			t.slots[s] = newIndex[i-1]
			t.served++
		}
	}
	return t
}

// shardOf returns the shard serving slot, or nil.
func (t *topology) shardOf(slot int) *shard {
	if uint(slot) >= Slots {
		return nil
	}
	if i := t.slots[slot]; i != 0 {
		return &t.shards[i-1]
	}
	return nil
}

// find returns the index of the shard whose primary is addr, or -1.
func (t *topology) find(addr string) int {
	for i := range t.shards {
		if t.shards[i].addr == addr {
			return i
		}
	}
	return -1
}

// uses reports the pools the topology refers to.
func (t *topology) uses() map[poolKey]bool {
	used := make(map[poolKey]bool)
	for _, sh := range t.shards {
		used[poolKey{addr: sh.addr}] = true
		if len(sh.readers) > 0 {
			for _, r := range sh.replicas {
				used[poolKey{addr: r, readOnly: true}] = true
			}
		}
	}
	return used
}
