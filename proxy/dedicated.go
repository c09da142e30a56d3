package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// connMode is the set of states a client's dedicated connection holds.
// No mode and no connection: the client is idle (it uses shared
// connections). A connection with no mode but commands in flight: the
// client is blocked (BLPOP...) or ran a command of unknown effect; the
// connection goes back (or is destroyed) once they are answered. Whether
// the client is blocked is dedicated.blocked's to say.
type connMode uint8

const (
	modeMulti      connMode = 1 << iota // inside MULTI: commands are queued upstream
	modeWatching                        // keys are watched upstream
	modeTracking                        // CLIENT TRACKING on: invalidations arrive here
	modeSubscribed                      // Pub/Sub: replies stream, unmatched
	modeMonitoring                      // MONITOR: replies stream; never reused

	modeStreaming = modeSubscribed | modeMonitoring
)

// dedicated is a client's pinned upstream connection and the state it holds
// there. Every transition happens through its methods, and the connection
// goes back to the pool only when it holds no state respguard does not
// know; in doubt it is destroyed.
//
// Concurrency: mu guards conn, and every write of mode and tx. Only the
// session's reader goroutine writes mode and tx, so it may read them
// without mu; any other goroutine (the pipe's reader, in releaseIfIdle)
// reads them under mu. Callers of the methods hold mu.
type dedicated struct {
	mu   sync.Mutex
	conn *pool.Conn // nil: not pinned
	tx   *txState   // never nil in MULTI or while watching (see txn); else nil, or a lost watch's outcome (see afterPinnedMove)

	// While tracking: where invalidations are redirected (nil: to this
	// connection) and whether in BCAST mode. Written by the reader goroutine.
	redir *redirection

	// While the session's reader waits for the pool or for probes' replies
	// (see session.untilHangUp): ends the wait. Not under mu: hangUp reads it.
	stopWait atomic.Pointer[context.CancelFunc]

	// blocked is the blocking commands in flight on conn (see
	// blockedCommands): whether, and in what, the client is blocked in
	// Redis. nil until the first one; set once, by the reader goroutine.
	blocked *blockedCommands

	mode  connMode
	bcast bool // see redir

	// Other clients redirect their invalidations here: the connection is
	// kept while the client lives, and destroyed when let go. Set, with
	// adopted, by the redirecting client's reader goroutine, which also
	// acquires the connection when there was none: adopted until this
	// client's reader goroutine has set it up for its next command (see
	// session.adopt).
	redirTarget, adopted bool

	// The upstream connections the client has cost lately (destroyed
	// dedicated ones, control commands' own): see churnBudget.
	churn churnBudget
}

// txState is the transaction in progress on the dedicated connection.
type txState struct {
	refused    bool     // a command of this MULTI was refused: EXEC aborts (EXECABORT)
	slot       int      // cluster: slot of the transaction's keys; -1: none yet
	deferred   bool     // cluster: MULTI answered locally; no node chosen yet
	held       [][]byte // cluster: keyless commands queued before the first key (encoded)
	watchCount int      // cluster: WATCH commands sent on the connection
	watchLost  bool     // cluster: watches dropped (see afterPinnedMove): EXEC must abort

	entries int // commands queued so far, upstream or local: the next one's index in EXEC's array
	// While streaming: the replies to MULTI and the commands sent upstream
	// after it, which stream with no marker after them (see discardTx).
	streamedReplies int
	locals          []localEntry   // commands respguard answers itself, spliced into EXEC's array
	selects         []queuedSelect // SELECTs queued upstream with an index respguard found valid, in order
}

// queueSelect records a SELECT of db about to be queued upstream.
func (tx *txState) queueSelect(db int) {
	tx.selects = append(tx.selects, queuedSelect{at: tx.entries - len(tx.locals), db: db})
}

// queuedSelect is a SELECT queued inside MULTI. It takes effect only if its
// own element of EXEC's array is +OK: Redis may still refuse it there.
type queuedSelect struct {
	at int // its index in Redis's EXEC array (respguard's local answers are not there)
	db int
}

// selectOutcome finds the db a transaction's SELECTs leave the client in,
// shown the elements of Redis's EXEC array in order: as in Redis, the last
// SELECT that succeeded wins.
type selectOutcome struct {
	selects []queuedSelect
	next    int // the first of selects whose element has not been shown
	db      int // -1: no SELECT succeeded (so far)
}

func newSelectOutcome(selects []queuedSelect) selectOutcome {
	return selectOutcome{selects: selects, db: -1}
}

// element is shown the index and RESP type byte of each element in turn.
func (o *selectOutcome) element(i int, kind byte) {
	if o.next < len(o.selects) && o.selects[o.next].at == i {
		if kind == '+' {
			o.db = o.selects[o.next].db
		}
		o.next++
	}
}

// localEntry is a command queued inside MULTI that respguard answers
// itself (AUTH, CLIENT SETNAME, CLIENT GETNAME, an UNSUBSCRIBE from a client
// with no subscription) when EXEC runs.
type localEntry struct {
	at   int      // its index in EXEC's array
	args [][]byte // owned copy
}

// has reports whether any of the modes in m is on.
func (d *dedicated) has(m connMode) bool { return d.mode&m != 0 }

// stateful reports whether the connection holds client state.
func (d *dedicated) stateful() bool { return d.mode != 0 }

// enter turns the modes in m on.
func (d *dedicated) enter(m connMode) {
	if m&(modeMulti|modeWatching) != 0 {
		d.txn()
	}
	d.mode |= m
}

// txn returns the transaction state, made when there was none: a client
// that never used MULTI or WATCH, or whose transaction ended, holds none
// (but for a cluster watch lost with its node, kept for the next EXEC).
func (d *dedicated) txn() *txState {
	if d.tx == nil {
		d.tx = &txState{slot: -1}
	}
	return d.tx
}

// endWatch forgets the watches (UNWATCH).
func (d *dedicated) endWatch() {
	d.mode &^= modeWatching
	if !d.has(modeMulti) {
		d.tx = nil
		return
	}
	d.tx.slot, d.tx.watchCount, d.tx.watchLost = -1, 0, false
}

// endTx ends the transaction and its watches, as EXEC and DISCARD do
// upstream.
func (d *dedicated) endTx() {
	d.mode &^= modeMulti | modeWatching
	d.tx = nil
}

// watch records a WATCH sent outside MULTI.
func (d *dedicated) watch() {
	d.enter(modeWatching)
	d.tx.watchCount++
}

// setTracking records CLIENT TRACKING ON or OFF.
func (d *dedicated) setTracking(on bool) {
	if on {
		d.mode |= modeTracking
	} else {
		d.mode &^= modeTracking
		d.redir, d.bcast = nil, false
	}
}

// dropConn gives the connection up: back to the pool if it holds no state
// and awaits no reply (see pool.Conn.Release), destroyed otherwise. The
// client's state on it ends with it.
func (d *dedicated) dropConn() {
	if d.conn != nil {
		if d.stateful() || d.redirTarget {
			d.conn.MarkDirty()
		}
		d.release()
	}
	d.blocked.reset()
	d.mode = 0
	d.redir, d.bcast, d.redirTarget, d.adopted = nil, false, false, false
	d.endTx()
}

// destroy gives the connection up and destroys it whatever it holds (RESET).
func (d *dedicated) destroy() {
	if d.conn != nil {
		d.conn.MarkDirty()
	}
	d.dropConn()
}

// releaseIfIdle gives back a connection that holds no state and awaits no
// reply; it reports whether the client is now unpinned.
func (d *dedicated) releaseIfIdle() bool {
	if d.conn == nil {
		return true
	}
	if d.stateful() || d.redirTarget || d.conn.InFlight() > 0 {
		return false
	}
	d.release()
	d.blocked.reset() // their replies are in
	return true
}

// release gives the connection back to the pool, which destroys it unless
// it is clean; a destroyed one is charged to the client (see churnBudget).
func (d *dedicated) release() {
	if d.conn.Release() {
		d.churn.spend(time.Now())
	}
	d.conn = nil
}

// execOutcome passes an EXEC's reply on to the client and notes whether the
// transaction ran (an array means it did; a null (a watched key changed) or
// an error (EXECABORT) means nothing queued ran) and which db its SELECTs
// left the client in. It implements pool.Target; each EXEC that needs its
// outcome has its own, passing the reply to next as it streams.
type execOutcome struct {
	next pool.Target

	// Pipe reader goroutine only.
	seen    bool // the reply's first bytes have come
	scan    resp.ArrayScanner
	selects selectOutcome

	// Read by the session once the reply is in.
	ran atomic.Bool
	db  atomic.Int64 // see selectOutcome.db
}

func newExecOutcome(next pool.Target, selects []queuedSelect) *execOutcome {
	e := &execOutcome{next: next, selects: newSelectOutcome(selects)}
	e.db.Store(-1)
	return e
}

func (e *execOutcome) Deliver(seq uint64, p []byte, last bool) {
	if !e.seen && len(p) > 0 {
		e.seen = true
		e.ran.Store(p[0] == '*' && (len(p) < 2 || p[1] != '-'))
	}
	e.scan.Scan(p, e.selects.element)
	if last {
		e.db.Store(int64(e.selects.db))
	}
	e.next.Deliver(seq, p, last)
}

func (e *execOutcome) DeliverPush(p []byte, last bool) { e.next.DeliverPush(p, last) }

func (e *execOutcome) Abort(err error) { e.next.Abort(err) }
