package proxy

import (
	"context"
	"strconv"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/proxy/resp"
)

// Redis Cluster's own error texts, returned as a cluster node would.
const (
	crossSlotText  = "CROSSSLOT Keys in request don't hash to the same slot"
	clusterSelect  = "ERR SELECT is not allowed in cluster mode"
	clusterNoState = "ERR respguard: CLIENT TRACKING is not supported in cluster mode"
)

// maxDeferred bounds the keyless commands a transaction may queue before its
// first key says which node it belongs to; past it the transaction goes to
// any node.
const maxDeferred = 1024

// clusterSlot returns the slot of the keys at keyIdx in args (sharded
// channels count as keys), -1 for a keyless command, and whether the keys
// span more than one slot.
func clusterSlot(name string, args [][]byte, keyIdx []int) (slot int, cross bool) {
	slot = -1
	for _, i := range keyIdx {
		if slot, cross = foldSlot(slot, args[i]); cross {
			return slot, true
		}
	}
	var channels [][]byte // not keys in COMMAND's key specs, but routed like them
	switch name {
	case "spublish":
		channels = args[1:min(2, len(args))]
	case "ssubscribe", "sunsubscribe":
		channels = args[1:]
	}
	for _, ch := range channels {
		if slot, cross = foldSlot(slot, ch); cross {
			return slot, true
		}
	}
	return slot, false
}

// foldSlot adds key to slot (-1: no key yet); cross is true when its slot differs.
func foldSlot(slot int, key []byte) (int, bool) {
	k := cluster.Slot(key)
	if slot >= 0 && k != slot {
		return slot, true
	}
	return k, false
}

// splittable lists the multi-key commands respguard splits per slot when
// their keys span slots, merging the parts' replies.
var splittable = map[string]func(parts [][]byte) []byte{
	"del": mergeSum, "unlink": mergeSum, "exists": mergeSum, "touch": mergeSum,
	"mset": mergeSame, "mget": nil, // MGET's merge depends on the key positions
}

// handleCluster routes a command in cluster mode: to the node serving its
// keys' slot, split or fanned out over the nodes, or pinned to one node's
// dedicated connection. False ends the session.
func (s *session) handleCluster(ctx context.Context, seq uint64, cls *commandClass, cmd resp.Command, slot int, cross bool) bool {
	k, name := cls.kind, cls.name
	if k == kindClient && clientStartsState(cmd.Args) {
		s.out.local(seq, resp.AppendError(nil, clusterNoState))
		return true
	}
	s.afterPinnedMove()
	s.ded.mu.Lock()
	pinned := s.ded.conn != nil
	s.ded.mu.Unlock()
	streaming, inTx := s.ded.has(modeStreaming), s.ded.has(modeMulti|modeWatching)
	needsPin := s.needsPin(k, name, cmd)
	switch {
	case inTx:
		return s.clusterTx(ctx, seq, k, name, cmd, slot, cross)
	case streaming:
		return s.forwardPinned(ctx, seq, k, name, cmd)
	case pinned && (slot == s.cl.slot || slot < 0 && !needsPin):
		return s.forwardPinned(ctx, seq, k, name, cmd) // behind the blocking command, as in Redis
	case pinned && needsPin:
		s.unpin(seq) // its blocking command is answered: move to the new node
	}
	if k == kindMulti {
		s.ded.mu.Lock()
		s.ded.enter(modeMulti)
		s.ded.txn().deferred = true // the first key will say where
		s.ded.mu.Unlock()
		s.out.local(seq, resp.AppendSimple(nil, "OK"))
		return true
	}
	if needsPin {
		if cross {
			s.out.local(seq, resp.AppendError(nil, crossSlotText))
			return true
		}
		s.pinAt(slot)
		if k == kindWatch {
			s.ded.mu.Lock()
			s.ded.txn().slot = slot
			s.ded.mu.Unlock()
		}
		return s.forwardPinned(ctx, seq, k, name, cmd)
	}
	s.clusterStateless(ctx, seq, name, cmd, slot, cross)
	return true
}

// clusterStateless sends a command that needs no connection state: split,
// fanned out, a SCAN step, or routed by slot; in the client's order (see
// sendOrder).
func (s *session) clusterStateless(ctx context.Context, seq uint64, name string, cmd resp.Command, slot int, cross bool) {
	if !s.order.before(s.out, nil, -1, s.proto, seq) {
		return // the client is gone
	}
	_, split := splittable[name]
	var merge func([][]byte) []byte
	if slot < 0 {
		merge = keylessMerge(name, cmd.Args)
	}
	switch {
	case cross && split:
		s.fanoutSplit(ctx, seq, name, cmd)
	case cross:
		s.out.local(seq, resp.AppendError(nil, crossSlotText))
	case slot < 0 && name == "info":
		s.infoWithSection(ctx, seq, cmd)
	case slot < 0 && name == "scan":
		s.clusterScan(ctx, seq, cmd)
	case merge != nil:
		s.fanoutAll(ctx, seq, cmd, merge)
	default:
		s.forwardRouted(ctx, seq, cmd, slot)
	}
}

// forwardRouted sends cmd over a shared connection of the node serving slot
// (a replica for reads when upstream.read_from says so; any primary when
// keyless), following redirections.
func (s *session) forwardRouted(ctx context.Context, seq uint64, cmd resp.Command, slot int) {
	cl := s.srv.cluster
	var p *pool.Pool
	switch {
	case slot < 0:
		p = anyPrimary(cl, s.id)
	case cl.ReadsReplicas() && s.srv.cmds.ReadOnly(cmd.Args):
		p = cl.Reader(slot)
	default:
		p, _ = cl.Primary(slot)
	}
	s.srv.redirects.get(cl, s.out, seq, cmd.Raw, cmd.Args, slot, s.proto, s.id).send(ctx, p, false)
}

// pinAt makes the next dedicated connection come from the node serving slot
// (any primary when keyless).
func (s *session) pinAt(slot int) {
	s.cl.slot, s.cl.to = slot, nil
	if slot >= 0 {
		s.cl.to, _ = s.srv.cluster.Primary(slot)
	}
	if s.cl.to == nil {
		s.cl.to = anyPrimary(s.srv.cluster, s.id)
	}
}

// unpin gives back a dedicated connection that holds no state once the
// replies before seq are in (its blocking command has been answered).
func (s *session) unpin(seq uint64) {
	s.out.waitBefore(seq)
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	s.ded.releaseIfIdle()
}

// clusterTx handles a command while the client watches keys or is in MULTI:
// the transaction stays on the node owning its first key's slot, and keys
// in other slots get Redis Cluster's CROSSSLOT error (which, inside MULTI,
// also aborts the EXEC, as Redis does).
func (s *session) clusterTx(ctx context.Context, seq uint64, k kind, name string, cmd resp.Command, slot int, cross bool) bool {
	inMulti, deferred, txSlot := s.ded.has(modeMulti), s.ded.tx.deferred, s.ded.tx.slot
	otherSlot := cross || slot >= 0 && txSlot >= 0 && slot != txSlot
	switch {
	case !inMulti && otherSlot && k != kindWatch && !s.needsPin(k, name, cmd):
		s.clusterStateless(ctx, seq, name, cmd, slot, cross) // not part of the transaction
		return true
	case otherSlot:
		s.refuse(seq, resp.AppendError(nil, crossSlotText))
		return true
	case deferred:
		return s.deferredTx(ctx, seq, k, name, cmd, slot)
	}
	if slot >= 0 && txSlot < 0 {
		s.ded.mu.Lock()
		s.ded.txn().slot = slot
		s.ded.mu.Unlock()
	}
	return s.forwardPinned(ctx, seq, k, name, cmd)
}

// afterPinnedMove lets a watching client whose WATCH met a moved slot start
// again on the right node: the dedicated connection (and its watches) goes.
// If keys were watched there before, they are no longer watched, so the
// transaction that follows must not commit: its EXEC answers a null array,
// as when a watched key changed, and the client's retry loop starts over.
// In MULTI nothing is needed: Redis aborts that EXEC itself.
func (s *session) afterPinnedMove() {
	if !s.cl.replies.moved.Swap(false) {
		return
	}
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if !s.ded.stateful() {
		// A blocking command's TRYAGAIN: its connection, now idle, goes back
		// before the retry is routed (the pipe's own release may not have
		// run yet), so the retry reaches the new owner.
		s.ded.releaseIfIdle()
		return
	}
	if s.ded.conn == nil || s.ded.has(modeMulti|modeStreaming) || !s.ded.has(modeWatching) {
		return
	}
	lost := s.ded.tx.watchCount > 1
	s.ded.destroy()
	s.ded.txn().watchLost = lost
}

// execAfterLostWatch answers EXEC with a null array when afterPinnedMove
// dropped watches (discarding any transaction opened upstream).
func (s *session) execAfterLostWatch(seq uint64) (done bool) {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if !s.ded.has(modeMulti) || !s.ded.tx.watchLost {
		return false
	}
	if s.proto >= 3 {
		s.discardTx(seq, resp.AppendNull(nil, 3))
	} else {
		s.discardTx(seq, []byte("*-1\r\n"))
	}
	return true
}

// deferredTx handles a command in a MULTI that has no node yet: keyless
// commands are held (answered QUEUED) until the first key picks the node,
// which then gets MULTI, the held commands, and this one.
func (s *session) deferredTx(ctx context.Context, seq uint64, k kind, name string, cmd resp.Command, slot int) bool {
	switch {
	case k == kindMulti:
		s.out.local(seq, resp.AppendError(nil, "ERR MULTI calls can not be nested"))
		return true
	case k == kindWatch:
		s.out.local(seq, resp.AppendError(nil, "ERR WATCH inside MULTI is not allowed"))
		return true
	case k == kindTxEnd && s.endEmptyTx(seq, name):
		return true
	case slot < 0 && k != kindTxEnd && len(s.ded.tx.held) < maxDeferred:
		s.ded.mu.Lock()
		s.ded.tx.held = append(s.ded.tx.held, resp.AppendCommand(nil, cmd.Args...))
		s.ded.tx.entries++
		s.ded.mu.Unlock()
		s.out.local(seq, resp.AppendSimple(nil, "QUEUED"))
		return true
	}
	s.pinAt(slot)
	s.out.waitBefore(seq)
	s.ded.mu.Lock()
	err := s.acquire(ctx)
	if err == nil {
		err = s.ded.conn.Send(nil, 0, nil, [][]byte{[]byte("MULTI")})
		for _, raw := range s.ded.tx.held {
			if err == nil {
				err = s.ded.conn.Send(nil, 0, raw, nil)
			}
		}
	}
	s.ded.tx.streamedReplies += 1 + len(s.ded.tx.held) // MULTI's and theirs stream if the connection does (see discardTx)
	s.ded.tx.held, s.ded.tx.deferred = nil, false
	if slot >= 0 {
		s.ded.txn().slot = slot
	}
	if err != nil {
		s.ded.endTx() // the transaction is lost with the connection
		s.ded.mu.Unlock()
		s.out.local(seq, pool.UnavailableReply(err))
		return true
	}
	s.ded.mu.Unlock()
	return s.forwardPinned(ctx, seq, k, name, cmd)
}

// endEmptyTx answers EXEC or DISCARD of a MULTI that never reached a node:
// nothing queued, or a command was refused (EXECABORT).
func (s *session) endEmptyTx(seq uint64, name string) bool {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	var reply []byte
	switch {
	case name == "discard":
		reply = resp.AppendSimple(nil, "OK")
	case s.ded.tx.refused:
		reply = resp.AppendError(nil, policy.ExecAbortText)
	case len(s.ded.tx.held) == 0 && len(s.ded.tx.locals) == 0:
		reply = resp.AppendArray(nil, 0)
	default:
		return false // held commands to run: the transaction goes to a node
	}
	s.ded.endTx()
	s.out.local(seq, reply)
	return true
}

// keylessMerge returns how to merge a keyless command that every primary
// must run (or whose answer covers every node), or nil.
func keylessMerge(name string, args [][]byte) func([][]byte) []byte {
	switch name {
	case "dbsize":
		return mergeSum
	case "keys":
		return mergeConcat
	case "flushall", "flushdb":
		return mergeSame
	case "script":
		if len(args) > 1 && (equalFold(args[1], "load") || equalFold(args[1], "flush")) {
			return mergeSame
		}
	case "function":
		for _, sub := range []string{"load", "flush", "delete", "restore"} {
			if len(args) > 1 && equalFold(args[1], sub) {
				return mergeSame
			}
		}
	}
	return nil
}

// fanoutAll sends cmd to every primary and merges their replies.
func (s *session) fanoutAll(ctx context.Context, seq uint64, cmd resp.Command, merge func([][]byte) []byte) {
	cl := s.srv.cluster
	pools, _ := cl.Primaries()
	if len(pools) == 0 {
		s.out.local(seq, slotNotServed(-1))
		return
	}
	f := newFanout(s.out, seq, len(pools), merge)
	for i, p := range pools {
		s.srv.redirects.get(cl, f, uint64(i), nil, cmd.Args, -1, s.proto, s.id).send(ctx, p, false)
	}
}

// fanoutSplit runs a multi-key command whose keys span slots as one command
// per slot, each through the guardrails, and merges the replies in the
// client's key order.
func (s *session) fanoutSplit(ctx context.Context, seq uint64, name string, cmd resp.Command) {
	keyIdx := s.work.keyIdx
	parts, slots, positions := splitBySlot(cmd.Args, keyIdx, name == "mset")
	if g := s.srv.guard.Load(); g != nil {
		for i := range parts {
			switch plan := g.Plan(parts[i], nil); plan.Action {
			case guard.Reject:
				s.guardAction("reject", plan.Reason)
				s.out.local(seq, resp.AppendError(nil, plan.Err))
				return
			case guard.Rewrite:
				s.guardAction("rewrite", plan.Reason)
				parts[i] = plan.Args
			}
		}
	}
	merge := splittable[name]
	if name == "mget" {
		merge = mergeByPosition(positions, len(keyIdx))
	}
	cl := s.srv.cluster
	f := newFanout(s.out, seq, len(parts), merge)
	for i := range parts {
		p, _ := cl.Primary(slots[i])
		s.srv.redirects.get(cl, f, uint64(i), nil, parts[i], slots[i], s.proto, s.id).send(ctx, p, false)
	}
}

// splitBySlot groups the keys at keyIdx (each followed by its value when
// withValues) into one command per slot, in first-seen order. positions[i]
// lists the key ordinals (0-based, in the client's order) of part i.
func splitBySlot(args [][]byte, keyIdx []int, withValues bool) (parts [][][]byte, slots []int, positions [][]int) {
	index := map[int]int{}
	for ord, i := range keyIdx {
		slot := cluster.Slot(args[i])
		p, ok := index[slot]
		if !ok {
			p = len(parts)
			index[slot] = p
			parts = append(parts, [][]byte{args[0]})
			slots = append(slots, slot)
			positions = append(positions, nil)
		}
		parts[p] = append(parts[p], args[i])
		if withValues && i+1 < len(args) {
			parts[p] = append(parts[p], args[i+1])
		}
		positions[p] = append(positions[p], ord)
	}
	return parts, slots, positions
}

// clusterScan runs one SCAN step. The client's cursor encodes the node and
// that node's cursor: cursor = nodeCursor*N + node, over the N primaries in
// slot order; a node's 0 moves on to the next node, the last node's 0 ends.
func (s *session) clusterScan(ctx context.Context, seq uint64, cmd resp.Command) {
	cl := s.srv.cluster
	pools, _ := cl.Primaries()
	if len(pools) == 0 {
		s.out.local(seq, slotNotServed(-1))
		return
	}
	if len(cmd.Args) < 2 {
		s.out.local(seq, wrongArgs("scan"))
		return
	}
	cursor, err := strconv.ParseUint(string(cmd.Args[1]), 10, 64)
	if err != nil {
		s.out.local(seq, resp.AppendError(nil, "ERR invalid cursor"))
		return
	}
	n := uint64(len(pools))
	node := cursor % n
	args := append([][]byte{cmd.Args[0], strconv.AppendUint(nil, cursor/n, 10)}, cmd.Args[2:]...)
	f := newFanout(s.out, seq, 1, func(parts [][]byte) []byte { return scanReply(parts[0], node, n) })
	s.srv.redirects.get(cl, f, 0, nil, args, -1, s.proto, s.id).send(ctx, pools[node], false)
}

// scanReply rewrites one node's SCAN reply with the client's cursor.
func scanReply(reply []byte, node, n uint64) []byte {
	elems, ok := resp.Elements(reply)
	if !ok || len(elems) != 2 {
		return reply // an error reply
	}
	body, ok := bulkBody(elems[0])
	c, err := strconv.ParseUint(string(body), 10, 64)
	if !ok || err != nil {
		return resp.AppendError(nil, "ERR respguard: unexpected SCAN reply from a cluster node")
	}
	var next uint64
	switch {
	case c == 0 && node+1 < n:
		next = node + 1
	case c == 0:
		next = 0
	case c > (^uint64(0)-node)/n:
		return resp.AppendError(nil, "ERR respguard: a node's SCAN cursor is too large to encode")
	default:
		next = c*n + node
	}
	out := resp.AppendArray(nil, 2)
	out = resp.AppendBulk(out, strconv.AppendUint(nil, next, 10))
	return append(out, elems[1]...)
}

// clusterPin is where a cluster-mode session's dedicated connection comes
// from, and the filter its replies pass through. Reader-goroutine state,
// but for replies' own (see pinnedReplies).
type clusterPin struct {
	to      *pool.Pool // node the next dedicated connection comes from; nil: none chosen yet
	slot    int        // slot the dedicated connection was acquired for (-1: keyless)
	replies pinnedReplies
}
