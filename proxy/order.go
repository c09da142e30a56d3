package proxy

import "github.com/respguard/respguard/pool"

// sendOrder keeps a client's commands running in Redis in the order the
// client sent them, although they travel on several upstream connections:
// a shared one per (db, protocol), a dedicated one, a retired shared one
// (see pool.Pool.Shared). Each connection runs what it carries in order;
// what breaks the order is a move: a command sent on another connection
// while the client's earlier ones still wait on the last one (written but
// held, or queued behind a long reply). So before a command goes to a
// connection other than the one the client's last command went to, the
// reply to that last command must be in (Redis has run it, and everything
// sent before it there). Staying on the same connection costs a
// comparison.
//
// Every path that sends a client's command upstream asks sendOrder first,
// but for the control commands that must overtake what they control
// (SCRIPT KILL...; see control), and the scripts run as another user and
// the replication link, which wait for every earlier reply themselves (see
// runScriptAs and replicate).
//
// Reader-goroutine state.
type sendOrder struct {
	// pipe is the connection the client's last command went to. nil: none
	// yet, or a connection chosen per command by the node its keys are on
	// (cluster mode), where the client's commands for one node move to
	// another of its connections only when the protocol changes, and
	// commands for different nodes need no order between them.
	pipe  *pool.Pipe
	last  uint64 // the reply slot of the client's last command
	db    int32  // the db of pipe's shared group; -1: pipe is not a shared connection of the one upstream
	proto int32  // the protocol of the client's last command; 0: no command was sent yet
}

// before readies the client's command seq to go to pipe in protocol proto
// (see sendOrder.pipe for nil): if that moves the client, it waits until the
// reply to its last command is in. It then records seq as the client's last
// command; db is pipe's shared group (-1: not a shared connection). It
// reports false if the client's output closed meanwhile.
func (o *sendOrder) before(out *outbox, pipe *pool.Pipe, db, proto int, seq uint64) bool {
	if !o.moveTo(out, pipe, proto) {
		return false
	}
	o.pipe, o.db, o.proto, o.last = pipe, int32(db), int32(proto), seq
	return true
}

// moveTo waits, if pipe (in proto) is not where the client's last command
// went, until that command's reply is in. False: the output closed.
func (o *sendOrder) moveTo(out *outbox, pipe *pool.Pipe, proto int) bool {
	moved := pipe != o.pipe
	if pipe == nil {
		moved = int32(proto) != o.proto
	}
	return o.proto == 0 || !moved || out.waitBefore(o.last+1)
}

// sentOn records the connection the client's command seq went to once it
// is chosen, for a command readied for a connection about to be acquired
// (after every earlier reply was in). Not a move: nothing is awaited.
func (o *sendOrder) sentOn(pipe *pool.Pipe, proto int, seq uint64) {
	o.pipe, o.db, o.proto, o.last = pipe, -1, int32(proto), seq
}

// held returns the retired shared connection the client must stay on
// instead of pipe, the fresh connection of the same group that replaced it
// (see pool.Pool.Shared), or nil. Staying keeps the client sending
// (Redis runs its commands there in its order) where moving would wait
// for the held command at the head of the retired one.
func (o *sendOrder) held(out *outbox, pipe *pool.Pipe, db, proto int) *pool.Pipe {
	prev := o.pipe
	if prev == pipe || prev == nil || o.db != int32(db) || o.proto != int32(proto) || prev.InFlight() == 0 || out.pending() <= 1 {
		return nil
	}
	return prev
}
