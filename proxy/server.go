package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/telemetry"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Server accepts clients and runs a session for each. Create it with
// NewServer; callers MUST call Shutdown or Close.
type Server struct {
	cfg       Config
	outLimits outputLimits     // from cfg.Client, shared by every session's outbox
	pool      *pool.Pool       // the one upstream (standalone, sentinel); nil in cluster mode
	cluster   *cluster.Cluster // cluster mode: one pool per node; nil otherwise
	redirects redirects        // cluster mode: per-command redirect followers, recycled
	log       *slog.Logger
	tel       *telemetry.Telemetry // nil: no telemetry
	models    modelCache           // the command model of the policy's command table
	cmds      *policy.Commands     // key positions, for statements (and policy)
	info      atomic.Pointer[pool.ServerInfo]
	reqLimits atomic.Pointer[requestLimits] // cache for requestLimits
	policy    atomic.Pointer[policy.Policy]
	guard     atomic.Pointer[guard.Guard] // nil: no guardrails
	scripts   *scriptUsers                // Redis users that run restricted users' scripts

	paused    clientPause                 // CLIENT PAUSE over this instance's clients
	authLimit atomic.Pointer[authLimiter] // failed AUTH attempts per client IP; nil: unlimited (see SetAuthRateLimit)

	upstreamAddr atomic.Pointer[hostPort] // for span attributes; see SetUpstreamAddress

	admin atomic.Pointer[Admin] // what RESPGUARD CONFIG and RELOAD use; nil: nothing (see SetAdmin)

	parkOnce sync.Once // starts parking with the first Serve
	parker   *parker   // watches parked sessions' sockets; nil: parking off (set once, before any session)

	// afterCommand, a test's hook, runs on a session's reader goroutine
	// once each command is handled.
	afterCommand atomic.Pointer[func(*session)]
	// afterCheck, a test's hook, runs on a session's reader goroutine once
	// policy has allowed a command, before the command changes anything.
	afterCheck atomic.Pointer[func(*session)]

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   bool
	nextID    uint64

	inShutdown atomic.Bool
	stopping   chan struct{} // closed by Shutdown or Close (see pause)
	stopOnce   sync.Once
	wg         sync.WaitGroup // one per running session
	stats      Stats
}

// Stats are the server's counters. All fields are safe for concurrent use.
type Stats struct {
	Connected       atomic.Int64
	accepted        atomic.Int64
	rejected        atomic.Int64
	outputOverflows atomic.Int64
	authFailures    atomic.Int64
	parked          atomic.Int64 // clients parked now
	sweeps          atomic.Int64 // sweeps for idle clients run

	goroutinesParked atomic.Int64 // reader goroutines parked since memory was last released (see sweep)
}

// Options are a Server's collaborators. Nil fields mean: a discarding
// logger, no telemetry, Redis's default policy (one user, "default", that
// may do anything without a password).
type Options struct {
	Logger    *slog.Logger
	Telemetry *telemetry.Telemetry
	Policy    *policy.Policy
	Guard     *guard.Guard // nil: no guardrails
	// Cluster, when non-nil, puts the server in cluster mode: commands are
	// routed over its node pools and the pool passed to NewServer may be nil.
	Cluster *cluster.Cluster
}

// NewServer returns a server for cfg that forwards through p. info describes
// the upstream (HELLO's version, SELECT's range); see pool.Control.Probe.
func NewServer(cfg Config, p *pool.Pool, info pool.ServerInfo, opts Options) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, pool: p, cluster: opts.Cluster, log: log, tel: opts.Telemetry, cmds: policy.BuiltinCommands(),
		listeners: make(map[net.Listener]struct{}), sessions: make(map[*session]struct{}), stopping: make(chan struct{})}
	s.outLimits = outputLimits{hard: cfg.Client.OutputBufferLimit, soft: cfg.Client.OutputBufferSoftLimit,
		softFor: cfg.Client.OutputBufferSoftTime, writeTimeout: cfg.Client.WriteTimeout}
	if p == nil && opts.Cluster == nil {
		return nil, errors.New("proxy: NewServer needs a pool or a cluster")
	}
	s.SetUpstreamAddress(s.upstreamAddress())
	s.SetUpstreamInfo(info)
	pol := opts.Policy
	if pol == nil {
		var err error
		if pol, err = policy.New(policy.Config{}, s.cmds); err != nil {
			return nil, fmt.Errorf("default policy: %w", err)
		}
	}
	s.scripts = newScriptUsers(s.mirrorUpstream, log)
	s.scripts.sync(context.Background(), pol)
	s.policy.Store(pol)
	s.guard.Store(opts.Guard)
	if s.tel != nil {
		s.tel.ObserveInFlight(s.commandsInFlight)
		s.tel.ObserveParked(s.Parked)
	}
	return s, nil
}

// commandsInFlight counts the commands whose replies are still due, over
// every session.
func (s *Server) commandsInFlight() int64 {
	n := 0
	for _, sess := range s.liveSessions() {
		n += sess.out.pending()
	}
	return int64(n)
}

// SetUpstreamInfo replaces what the server reports about the upstream.
func (s *Server) SetUpstreamInfo(info pool.ServerInfo) {
	if info.Databases <= 0 {
		info.Databases = 16
	}
	if info.Version == "" {
		info.Version = "7.0.0"
	}
	if info.Mode == "" {
		info.Mode = "standalone"
	}
	if info.Role == "" {
		info.Role = "master"
	}
	s.info.Store(&info)
}

func (s *Server) upstreamInfo() *pool.ServerInfo { return s.info.Load() }

func (s *Server) shuttingDown() bool { return s.inShutdown.Load() }

// beginStop marks the server as stopping: Serve returns, pauses end.
func (s *Server) beginStop() {
	s.inShutdown.Store(true)
	s.stopOnce.Do(func() { close(s.stopping) })
}

// pause waits d, or less when the server stops (then it returns false).
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopping:
		return false
	}
}

// Serve accepts clients on l until Shutdown or Close; it then returns
// ErrServerClosed. It closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.parkOnce.Do(s.startParking)
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: back off and keep serving, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "error", err, "after", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.start(conn)
	}
}

// start runs a session for conn, or refuses it when max_clients is reached.
func (s *Server) start(conn net.Conn) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if len(s.sessions) >= s.cfg.Client.MaxClients {
		s.mu.Unlock()
		s.stats.rejected.Add(1)
		if s.tel != nil {
			s.tel.ClientRejected()
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write([]byte("-ERR max number of clients reached\r\n"))
		conn.Close()
		return
	}
	s.nextID++
	sess := newSession(s, conn, s.nextID)
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.stats.accepted.Add(1)
	s.stats.Connected.Add(1)
	if s.tel != nil {
		s.tel.ClientAccepted()
	}
	sess.begin()
}

// sessionEnded forgets a session whose reader has stopped for good.
func (s *Server) sessionEnded(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.stats.Connected.Add(-1)
	if s.tel != nil {
		s.tel.ClientClosed()
	}
	s.wg.Done()
}

// Shutdown stops accepting, stops reading new commands, lets replies already
// due reach their clients, ends what can only wait (blocked commands are
// unblocked upstream, as by their timeout; subscribers and MONITOR are
// closed), and returns nil when every session has ended. If ctx is done
// first, the rest are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginStop()
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	now := time.Now()
	for sess := range s.sessions {
		sess.stopReading(now) // the reader stops; the writer drains
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.scripts.close(); close(done) }()
	tick := time.NewTicker(drainInterval)
	defer tick.Stop()
	warned := false
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.Close()
			<-done
			return ctx.Err()
		case <-tick.C:
			s.drainWaiting(ctx, &warned)
		}
	}
}

// Close closes the listeners and every client connection at once.
func (s *Server) Close() error {
	s.beginStop()
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.hangUp()
	}
	s.mu.Unlock()
	s.scripts.close()
	return nil
}

// Accepted, Rejected, OutputOverflows and AuthFailures report counters.
func (s *Server) Accepted() int64        { return s.stats.accepted.Load() }
func (s *Server) Rejected() int64        { return s.stats.rejected.Load() }
func (s *Server) OutputOverflows() int64 { return s.stats.outputOverflows.Load() }
func (s *Server) AuthFailures() int64    { return s.stats.authFailures.Load() }
func (s *Server) Connected() int64       { return s.stats.Connected.Load() }

// mirrorUpstream is the pool configuration mirror users' pools start from;
// false in cluster mode, where they are not supported.
func (s *Server) mirrorUpstream() (pool.Config, bool) {
	if s.pool == nil {
		return pool.Config{}, false
	}
	return s.pool.Config(), true
}

// keys appends the key argument indexes of args to dst.
func (s *Server) keys(args [][]byte, dst []int) []int { return s.cmds.Keys(args, dst) }

// upstreamAddress is the upstream named in spans: the one Redis, or the
// first primary of the cluster.
func (s *Server) upstreamAddress() string {
	if s.cluster != nil {
		if _, addrs := s.cluster.Primaries(); len(addrs) > 0 {
			return addrs[0]
		}
		return ""
	}
	return s.pool.Config().Address
}

// poolStats sums the upstream pools' counters.
func (s *Server) poolStats() pool.Stats {
	if s.cluster != nil {
		return s.cluster.Stats()
	}
	return s.pool.Stats()
}

// hostPort is the upstream as spans name it (server.address, server.port).
type hostPort struct {
	host string
	port int
}

// SetUpstreamAddress changes the upstream address spans report, e.g. after
// a Sentinel failover. A malformed address clears it.
func (s *Server) SetUpstreamAddress(addr string) {
	var hp hostPort
	if host, port, err := net.SplitHostPort(addr); err == nil {
		hp.host = host
		hp.port, _ = strconv.Atoi(port)
	}
	s.upstreamAddr.Store(&hp)
}
