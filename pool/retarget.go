package pool

import "errors"

// ErrRetargeted ends the connections to the old address when the pool is
// pointed at a new one (a Sentinel failover): their in-flight commands get
// "-ERR upstream unavailable: pool: upstream moved to a new address".
var ErrRetargeted = errors.New("pool: upstream moved to a new address")

// errStaleDial reports a dial that began before a Retarget; it is retried.
var errStaleDial = errors.New("pool: dial raced a retarget")

// Address returns where the pool dials now: Config.Address, or the address
// of the latest Retarget.
func (p *Pool) Address() string {
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	return p.addr
}

// target returns the configuration to dial with now and its generation.
func (p *Pool) target() (Config, uint64) {
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	cfg := p.cfg
	cfg.Address = p.addr
	return cfg, p.gen
}

// Retarget points the pool at addr (a new primary) and closes every
// connection to the old one: shared and idle dedicated connections at once,
// acquired dedicated ones too, so the clients pinned to them get error
// replies and their Release destroys them. Commands in flight get
// ErrRetargeted's error reply; new commands dial addr. Dials already under
// way to the old address are discarded and retried. The breaker is reset.
// Retarget does not block on the network; calling it with the current
// address still closes every connection.
func (p *Pool) Retarget(addr string) {
	p.liveMu.Lock()
	p.addr = addr
	p.gen++
	old := p.live
	p.live = make(map[*Pipe]struct{})
	p.liveMu.Unlock()
	p.breaker.success()
	for pipe := range old {
		pipe.fail(ErrRetargeted)
	}
	for _, res := range p.dedicated.AcquireAllIdle() {
		res.Destroy()
	}
}

// track adds a pipe dialed at generation gen to the live set, reporting
// false (and keeping nothing) when a Retarget came in between. A nil pipe
// (a failed dial) only checks the generation.
func (p *Pool) track(pipe *Pipe, gen uint64) bool {
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	if p.gen != gen {
		return false
	}
	if pipe != nil {
		p.live[pipe] = struct{}{}
		go p.forgetWhenDone(pipe)
	}
	return true
}

// forgetWhenDone removes pipe from the live set once it has closed.
func (p *Pool) forgetWhenDone(pipe *Pipe) {
	<-pipe.Done()
	p.liveMu.Lock()
	delete(p.live, pipe)
	p.liveMu.Unlock()
}

// SetOnUnavailable registers f, called when a dial fails for a reason other
// than a Redis error reply (refused, timed out, TLS) and when a shared
// connection fails (not when it is closed by Close or Retarget): the cue for
// a Sentinel watcher to re-check which node is the primary. f runs on
// dialing clients' and connections' goroutines, so it must not block; nil
// (the default) unregisters. It is not part of Config because it is code,
// not configuration.
func (p *Pool) SetOnUnavailable(f func(error)) {
	if f == nil {
		p.onUnavailable.Store(nil)
		return
	}
	p.onUnavailable.Store(&f)
}

// unavailable calls the OnUnavailable hook, if any.
func (p *Pool) unavailable(err error) {
	if f := p.onUnavailable.Load(); f != nil {
		(*f)(err)
	}
}
