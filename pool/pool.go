package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// ErrPoolExhausted is returned when no dedicated connection frees up within
// Config.AcquireTimeout.
var ErrPoolExhausted = errors.New("pool: no dedicated upstream connection available")

// Pool owns every upstream connection: the shared multiplexed pipes, keyed by
// (db, protocol), and the dedicated connections in a puddle pool. Callers
// MUST call Close.
type Pool struct {
	cfg       Config // as given; its Address is only the first target (see addr)
	dedicated *puddle.Pool[*Pipe]

	mu     sync.Mutex // guards shared
	shared map[sharedKey]*sharedGroup

	liveMu sync.Mutex         // guards the fields below; never held across I/O
	addr   string             // where dials go: cfg.Address, then each Retarget's
	gen    uint64             // bumped by each Retarget
	live   map[*Pipe]struct{} // open connections dialed at gen, closed by Retarget

	breaker       breaker
	onUnavailable atomic.Pointer[func(error)] // see SetOnUnavailable
	limits        atomic.Pointer[Limits]      // as the latest dial read them; nil before the first

	// Counters read by telemetry.
	dialErrors atomic.Int64
	dials      atomic.Int64
	reconnects atomic.Int64 // dials that replaced a lost connection or ended an outage

	closeOnce sync.Once
	closed    chan struct{}
}

type sharedKey struct{ db, proto int }

// sharedGroup holds the shared pipes of one (db, protocol).
type sharedGroup struct {
	mu    sync.Mutex // guards pipes; held while dialing a replacement
	pipes []*Pipe

	drainMu  sync.Mutex         // guards draining; never held with mu's holder waiting on it
	draining map[*Pipe]struct{} // stalled pipes replaced in pipes, closing once their replies are in
}

// New returns a pool for cfg. It does not dial: connections are made on first
// use (and MinIdleConns by the maintenance goroutine).
func New(cfg Config) (*Pool, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg: cfg, shared: make(map[sharedKey]*sharedGroup), closed: make(chan struct{}),
		addr: cfg.Address, live: make(map[*Pipe]struct{}),
	}
	p.breaker.base, p.breaker.probeFor = cfg.RetryBackoff, 2*cfg.DialTimeout // dial, then set-up
	dp, err := puddle.NewPool(&puddle.Config[*Pipe]{
		Constructor: func(ctx context.Context) (*Pipe, error) { return p.dial(ctx, 0, 2, false) },
		Destructor:  func(pipe *Pipe) { pipe.Close() },
		MaxSize:     int32(cfg.MaxConns),
	})
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	p.dedicated = dp
	go p.maintain()
	return p, nil
}

// Config returns the effective configuration, with the current Address.
func (p *Pool) Config() Config {
	cfg, _ := p.target()
	return cfg
}

// dial opens one set-up connection, failing fast while the breaker is open.
// A dial overtaken by a Retarget is retried once, to the new address.
// replacing says the dial replaces a connection that failed (a reconnect).
func (p *Pool) dial(ctx context.Context, db, proto int, replacing bool) (*Pipe, error) {
	pipe, err := p.dialOnce(ctx, db, proto, replacing)
	if errors.Is(err, errStaleDial) {
		pipe, err = p.dialOnce(ctx, db, proto, replacing)
	}
	if errors.Is(err, errStaleDial) {
		err = ErrRetargeted
	}
	return pipe, err
}

// dialOnce dials the current target. Construction has its own timeout:
// puddle does not cancel it when an Acquire is cancelled.
func (p *Pool) dialOnce(ctx context.Context, db, proto int, replacing bool) (*Pipe, error) {
	if err := p.breaker.check(); err != nil {
		return nil, err
	}
	cfg, gen := p.target()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DialTimeout)
	defer cancel()
	started := time.Now()
	p.dials.Add(1)
	pipe, err := Dial(ctx, cfg, db, proto)
	if !p.track(pipe, gen) { // the old address's outcome says nothing of the new one
		if pipe != nil {
			pipe.fail(ErrRetargeted)
		}
		return nil, errStaleDial
	}
	p.recordDial(err, started, replacing)
	if err == nil {
		p.noteLimits(pipe.limits)
	}
	return pipe, err
}

// noteLimits records what a new connection read of Redis's limits. The
// pointer Limits returns changes only when a value does.
func (p *Pool) noteLimits(l Limits) {
	if old := p.limits.Load(); old == nil || *old != l {
		p.limits.Store(&l)
	}
}

// Limits returns Redis's limits as the latest connection set-up read them
// (so a CONFIG SET is seen at the next dial), or nil if none has been set
// up yet. The result must not be modified; it is the same pointer until a
// value changes.
func (p *Pool) Limits() *Limits { return p.limits.Load() }

// recordDial feeds a dial's outcome to the breaker, the counters and the
// OnUnavailable hook. A successful dial that replaces a failed connection or
// ends an outage (the breaker was open) counts as a reconnect.
func (p *Pool) recordDial(err error, started time.Time, replacing bool) {
	var redisErr *RedisError
	switch {
	case err == nil:
		if recovered := p.breaker.success(); recovered || replacing {
			p.reconnects.Add(1)
		}
	case errors.As(err, &redisErr):
		// Redis answered: it is up, the request was wrong (e.g. bad db).
		p.breaker.success()
	default:
		p.dialErrors.Add(1)
		p.breaker.failure(err, started)
		p.unavailable(err)
	}
}

// Shared returns a live multiplexed pipe for (db, proto). hint spreads clients
// over the group's pipes (a client passes the same hint every time). A pipe
// whose awaited reply has made no progress for Config.StallAfter is retired
// (see retire) and a fresh one takes its place, unless MaxRetired are
// already draining or the dial fails.
func (p *Pool) Shared(ctx context.Context, db, proto int, hint uint64) (*Pipe, error) {
	g := p.group(db, proto)
	i := int(hint % uint64(len(g.pipes)))
	g.mu.Lock()
	defer g.mu.Unlock()
	held := g.pipes[i]
	if held != nil && held.Err() == nil {
		if !held.Stalled(p.cfg.StallAfter) || g.drainingCount() >= MaxRetired {
			return held, nil
		}
	}
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	pipe, err := p.dial(ctx, db, proto, held != nil && held.Err() != nil)
	if err != nil {
		if held != nil && held.Err() == nil {
			return held, nil // no fresh connection: queue behind the held one
		}
		return nil, err
	}
	pipe.SetCommandTimeout(p.cfg.CommandTimeout)
	pipe.setOnFail(p.sharedFailed)
	g.pipes[i] = pipe
	if held != nil && held.Err() == nil {
		p.retire(g, held)
	}
	return pipe, nil
}

// retire takes a stalled shared pipe out of its group: it keeps serving the
// replies already awaited on it and closes once they are in. Caller holds g.mu.
func (p *Pool) retire(g *sharedGroup, pipe *Pipe) {
	g.drainMu.Lock()
	if g.draining == nil {
		g.draining = map[*Pipe]struct{}{}
	}
	g.draining[pipe] = struct{}{}
	g.drainMu.Unlock()
	pipe.setOnFail(func(err error) {
		g.drainMu.Lock()
		delete(g.draining, pipe)
		g.drainMu.Unlock()
		p.sharedFailed(err)
	})
	pipe.SetOwner(nil, (*Pipe).closeIfIdle)
	pipe.closeIfIdle() // drained meanwhile: onIdle may have been missed
}

// sharedFailed reacts to a shared pipe's failure. A timeout opens the
// breaker: Redis is accepting connections but not answering (paused, hung),
// and waiting out a dial timeout per client would be no better than hanging.
func (p *Pool) sharedFailed(err error) {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrRetargeted) {
		return // closed on purpose
	}
	if errors.Is(err, ErrCommandTimeout) {
		p.breaker.failure(err, time.Time{})
	}
	p.unavailable(err)
}

func (g *sharedGroup) drainingCount() int {
	g.drainMu.Lock()
	defer g.drainMu.Unlock()
	return len(g.draining)
}

// closeDraining closes the retired pipes still draining.
func (g *sharedGroup) closeDraining() {
	g.drainMu.Lock()
	pipes := make([]*Pipe, 0, len(g.draining))
	for pipe := range g.draining {
		pipes = append(pipes, pipe)
	}
	g.drainMu.Unlock()
	for _, pipe := range pipes {
		pipe.Close()
	}
}

func (p *Pool) group(db, proto int) *sharedGroup {
	key := sharedKey{db, proto}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.shared[key]
	if g == nil {
		g = &sharedGroup{pipes: make([]*Pipe, p.cfg.SharedConns)}
		p.shared[key] = g
	}
	return g
}

// Conn is a dedicated connection acquired from the pool. Its single owner
// MUST call Release (or Destroy); further calls do nothing. If the
// connection fails first, its pool slot is freed at once, so a client pinned
// to a dead connection does not hold a slot others are waiting for.
type Conn struct {
	*Pipe
	pool *Pool
	res  *puddle.Resource[*Pipe]
	gone atomic.Bool // the resource was released or destroyed
}

// Pool returns the pool the connection came from.
func (c *Conn) Pool() *Pool { return c.pool }

// Acquire returns a dedicated connection, waiting up to AcquireTimeout for
// one to free up.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AcquireTimeout)
	defer cancel()
	for {
		res, err := p.dedicated.Acquire(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w within %s (pool.max_conns=%d)", ErrPoolExhausted, p.cfg.AcquireTimeout, p.cfg.MaxConns)
			}
			return nil, err
		}
		if res.Value().Reusable() {
			c := &Conn{Pipe: res.Value(), pool: p, res: res}
			c.Pipe.setOnFail(func(error) { c.Destroy() })
			if c.Pipe.Err() == nil { // else it failed meanwhile (a Retarget): the hook destroyed it
				return c, nil
			}
			continue
		}
		res.Destroy() // died while idle (e.g. Redis restarted)
	}
}

// Exhausted reports whether an Acquire now would wait: every dedicated
// connection the pool may open is open and taken.
func (p *Pool) Exhausted() bool {
	s := p.dedicated.Stat()
	return s.IdleResources() == 0 && s.TotalResources() >= s.MaxResources()
}

// Release returns the connection to the pool when it is clean, and destroys
// it otherwise (in flight replies, state left behind, failed). It reports
// whether this call destroyed it: the pool will dial a new one in its place.
func (c *Conn) Release() (destroyed bool) {
	c.Pipe.SetOwner(nil, nil)
	c.Pipe.setOnFail(nil)
	if !c.gone.CompareAndSwap(false, true) {
		return false
	}
	if c.Pipe.Reusable() {
		c.res.Release()
		return false
	}
	c.res.Destroy()
	return true
}

// Destroy closes the connection instead of returning it.
func (c *Conn) Destroy() {
	if c.gone.CompareAndSwap(false, true) {
		c.res.Destroy()
	}
}

// Stats is a snapshot of the pool for metrics.
type Stats struct {
	Total, Idle, Acquired, Constructing int
	Shared                              int
	AcquireCount                        int64
	EmptyAcquires, CanceledAcquires     int64 // acquires that waited or dialed; abandoned by their context
	AcquireWait                         time.Duration
	Dials, DialErrors, Reconnects       int64
	BreakersOpen                        int // pools whose dials are failing fast (0 or 1 for one pool)
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	s := p.dedicated.Stat()
	st := Stats{
		Total: int(s.TotalResources()), Idle: int(s.IdleResources()),
		Acquired: int(s.AcquiredResources()), Constructing: int(s.ConstructingResources()),
		AcquireCount: s.AcquireCount(), AcquireWait: s.EmptyAcquireWaitTime(),
		EmptyAcquires: s.EmptyAcquireCount(), CanceledAcquires: s.CanceledAcquireCount(),
		Dials: p.dials.Load(), DialErrors: p.dialErrors.Load(), Reconnects: p.reconnects.Load(),
	}
	if p.breaker.isOpen() {
		st.BreakersOpen = 1
	}
	p.mu.Lock()
	for _, g := range p.shared {
		g.mu.Lock()
		for _, pipe := range g.pipes {
			if pipe != nil && pipe.Err() == nil {
				st.Shared++
			}
		}
		g.mu.Unlock()
	}
	p.mu.Unlock()
	return st
}

// Close closes every connection. In-flight commands get error replies.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.mu.Lock()
		for _, g := range p.shared {
			g.mu.Lock()
			for _, pipe := range g.pipes {
				if pipe != nil {
					pipe.Close()
				}
			}
			g.mu.Unlock()
			g.closeDraining()
		}
		p.mu.Unlock()
		p.dedicated.Close()
	})
}

// maintain closes idle connections past IdleTimeout and keeps MinIdleConns.
func (p *Pool) maintain() {
	interval := p.cfg.IdleTimeout / 2
	if interval > 30*time.Second || interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		p.topUp()
		select {
		case <-p.closed:
			return
		case <-t.C:
		}
		for _, res := range p.dedicated.AcquireAllIdle() {
			if res.IdleDuration() > p.cfg.IdleTimeout || !res.Value().Reusable() {
				res.Destroy()
			} else {
				res.ReleaseUnused()
			}
		}
	}
}

func (p *Pool) topUp() {
	for i := int(p.dedicated.Stat().IdleResources()); i < p.cfg.MinIdleConns; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DialTimeout)
		err := p.dedicated.CreateResource(ctx)
		cancel()
		if err != nil {
			return
		}
	}
}
