package sentinel

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/respguard/respguard/pool"
)

// After a failed re-check, the next one runs after retryMin, doubling to
// retryMax, until one succeeds.
const (
	retryMin = time.Second
	retryMax = 15 * time.Second
)

// Watcher knows the current primary and follows it through failovers.
// Make one with New (the zero value is not usable). Its methods are safe for
// concurrent use.
type Watcher struct {
	cfg  Config
	node pool.Config // the data nodes' credentials and TLS, for ROLE
	log  *slog.Logger

	recheck chan struct{} // cap 1: a re-check is wanted (coalesced)
	hinted  chan struct{} // cap 1: a switch message set hint; ends a wait between resolve's rounds (a stale token only shortens one)

	mu     sync.Mutex // guards the fields below
	addr   string     // the confirmed primary
	hint   string     // a switch message's new address, tried first by the next re-check
	checks int64      // re-checks completed, for tests
}

// New asks the sentinels in turn for the primary named cfg.MasterName and
// confirms it with ROLE, reaching the data node with node's credentials and
// TLS (node.Address and node.DialTimeout are ignored: every query is bounded
// by cfg.DialTimeout, and by ctx). It returns ErrNoPrimary (wrapped, with
// each sentinel's failure) when no sentinel names a confirmed primary, after
// a few rounds (about 2 s). A nil log discards.
func New(ctx context.Context, cfg Config, node pool.Config, log *slog.Logger) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{cfg: cfg.withDefaults(), node: node, log: log, recheck: make(chan struct{}, 1), hinted: make(chan struct{}, 1)}
	w.node.DialTimeout = w.cfg.DialTimeout
	addr, err := w.resolve(ctx)
	if err != nil {
		return nil, err
	}
	w.addr = addr
	return w, nil
}

// Addr returns the confirmed primary's address, host:port.
func (w *Watcher) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Recheck asks Run to re-resolve the primary. It does not block, and calls
// made while a re-check is pending count as one: hook it to connection
// failures (pool.Pool.SetOnUnavailable).
func (w *Watcher) Recheck() {
	select {
	case w.recheck <- struct{}{}:
	default:
	}
}

// Run follows the primary until ctx is done: it keeps a subscription to
// +switch-master on one sentinel (moving to the next on failure), and
// re-resolves on each switch message for MasterName, on each Recheck, after
// each (re)subscription, and again after a failed re-check (1s, doubling to
// 15s). When the confirmed primary changes it calls onChange(addr) from
// Run's goroutine, so onChange should be quick (pool.Pool.Retarget is).
// Run returns once its goroutines have ended: within a dial timeout of ctx
// being done. Call it once.
func (w *Watcher) Run(ctx context.Context, onChange func(addr string)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.subscribeLoop(ctx)
	}()
	w.follow(ctx, onChange)
	wg.Wait()
}

// follow runs re-checks when asked, and after failed ones, until ctx is done.
func (w *Watcher) follow(ctx context.Context, onChange func(string)) {
	retry := time.NewTimer(0)
	retry.Stop()
	backoff := retryMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.recheck:
		case <-retry.C:
		}
		if w.refresh(ctx, onChange) {
			retry.Stop()
			backoff = retryMin
			continue
		}
		retry.Reset(backoff)
		backoff = min(2*backoff, retryMax)
	}
}

// refresh re-resolves the primary and reports onChange a change, returning
// whether a primary was confirmed.
func (w *Watcher) refresh(ctx context.Context, onChange func(string)) bool {
	addr, err := w.resolve(ctx)
	w.mu.Lock()
	old := w.addr
	if err == nil {
		w.addr = addr
	}
	w.checks++
	w.mu.Unlock()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			w.log.Warn("sentinel: cannot confirm the primary; retrying", "master", w.cfg.MasterName, "primary", old, "error", err)
		}
		return false
	case addr != old:
		w.log.Info("sentinel: primary changed", "master", w.cfg.MasterName, "from", old, "to", addr)
		onChange(addr)
	}
	return true
}

// switched records a switch message's new address and asks for a re-check.
func (w *Watcher) switched(addr string) {
	w.mu.Lock()
	w.hint = addr
	w.mu.Unlock()
	select {
	case w.hinted <- struct{}{}:
	default:
	}
	w.Recheck()
}

// takeHint returns and clears the latest switch message's address.
func (w *Watcher) takeHint() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	hint := w.hint
	w.hint = ""
	return hint
}
