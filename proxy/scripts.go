package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	tidwall "github.com/tidwall/resp"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// errNoMirrorInCluster is why mirror users are unavailable in cluster mode:
// Redis's users are per node and respguard creates them on one upstream.
var errNoMirrorInCluster = errors.New("proxy: mirror users are not supported in cluster mode")

// mirrorSyncTimeout bounds the ACL commands of one synchronization, and
// mirrorRetry is how often a failed mirror is set up again when its
// scripts are called.
const (
	mirrorSyncTimeout = 5 * time.Second
	mirrorRetry       = time.Second
)

// scriptUsers keeps the Redis users that run restricted users' scripts
// (policy.script_identity: mirror, see policy.Policy.Mirrors), each with
// its own small pool of connections authenticated as it, so that Redis
// judges every redis.call by the proxy user's rules.
type scriptUsers struct {
	upstream func() (pool.Config, bool) // the upstream's pool config; false in cluster mode
	log      *slog.Logger

	mu      sync.Mutex // guards the fields below; held during a sync's ACL commands
	users   map[string]*scriptUser
	cleaned bool // mirrors left over by an earlier run were deleted
	closed  bool
}

// scriptUser is one mirror user as respguard set it up.
type scriptUser struct {
	name     string     // policy.MirrorName of the proxy user, or the operator's user
	managed  bool       // the operator's user: never changed or deleted
	password string     // mirrorPassword, or the operator's
	rules    []string   // the rules last applied (after "reset on >password")
	err      error      // why the user is not usable; nil when set up
	tried    time.Time  // when ACL SETUSER was last sent
	pool     *pool.Pool // created on first use
}

func newScriptUsers(upstream func() (pool.Config, bool), log *slog.Logger) *scriptUsers {
	return &scriptUsers{upstream: upstream, log: log, users: map[string]*scriptUser{}}
}

// sync creates or updates the mirror users pol needs and deletes the ones it
// no longer needs, on the upstream (ACL SETUSER name reset on >password
// rules...). A user whose set-up failed records why; its scripts are
// refused. Call it before the policy is put in force.
func (m *scriptUsers) sync(ctx context.Context, pol *policy.Policy) {
	want := pol.Mirrors()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || len(want) == 0 && len(m.users) == 0 {
		return
	}
	cfg, ok := m.upstream()
	if !ok {
		for _, w := range want {
			m.users[w.Name] = &scriptUser{name: w.Name, err: errNoMirrorInCluster}
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, mirrorSyncTimeout)
	defer cancel()
	ctl := pool.NewControl(cfg)
	if !m.cleaned {
		m.cleaned = m.deleteStale(ctx, ctl, want) == nil
	}
	m.apply(ctx, ctl, cfg, want)
}

// apply sends one ACL SETUSER per changed mirror and one ACL DELUSER per
// mirror no longer wanted. Caller holds mu.
func (m *scriptUsers) apply(ctx context.Context, ctl *pool.Control, cfg pool.Config, want []policy.MirrorUser) {
	var cmds [][]string
	var changed []*scriptUser
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.Name] = true
		su := m.users[w.Name]
		if su == nil || su.managed != w.OperatorManaged() || su.managed && su.password != w.Password {
			if su != nil {
				su.close()
			}
			su = &scriptUser{name: w.Name, password: w.Password, managed: w.OperatorManaged()}
			if !su.managed {
				su.password = mirrorPassword(cfg, w.Name)
			}
			m.users[w.Name] = su
		}
		if su.managed || slices.Equal(su.rules, w.Rules) && su.err == nil {
			continue
		}
		su.rules = w.Rules
		cmds = append(cmds, su.setUserCommand())
		changed = append(changed, su)
	}
	for name, su := range m.users {
		if !wanted[name] {
			if !su.managed {
				cmds = append(cmds, []string{"ACL", "DELUSER", name})
			}
			su.close()
			delete(m.users, name)
		}
	}
	if len(cmds) == 0 {
		return
	}
	replies, err := ctl.Do(ctx, cmds...)
	for i, su := range changed {
		var reply tidwall.Value
		if err == nil {
			reply = replies[i+1]
		}
		m.record(su, reply, err)
	}
}

// retry sets up a mirror whose set-up failed (Redis was unreachable at
// start, say) again, at most once per mirrorRetry. Caller holds mu.
func (m *scriptUsers) retry(su *scriptUser) {
	cfg, ok := m.upstream()
	if !ok || su.managed || time.Since(su.tried) < mirrorRetry {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), mirrorSyncTimeout)
	defer cancel()
	replies, err := pool.NewControl(cfg).Do(ctx, su.setUserCommand())
	var reply tidwall.Value
	if err == nil {
		reply = replies[1]
	}
	m.record(su, reply, err)
}

// record notes the outcome of su's ACL SETUSER. Caller holds mu.
func (m *scriptUsers) record(su *scriptUser, reply tidwall.Value, err error) {
	su.tried = time.Now()
	switch {
	case err != nil:
		su.err = fmt.Errorf("ACL SETUSER: %w", err)
	case reply.Type() == tidwall.Error:
		su.err = fmt.Errorf("ACL SETUSER: %s", reply.String())
	default:
		su.err = nil
		return
	}
	m.log.Warn("cannot set up the Redis user that runs a proxy user's scripts; its scripts are refused", "user", su.name, "error", su.err)
}

// setUserCommand creates or replaces the mirror with its rules.
func (su *scriptUser) setUserCommand() []string {
	return append([]string{"ACL", "SETUSER", su.name, "reset", "on", ">" + su.password}, su.rules...)
}

// deleteStale deletes mirror users an earlier run left behind for users
// the policy no longer has. Caller holds mu.
func (m *scriptUsers) deleteStale(ctx context.Context, ctl *pool.Control, want []policy.MirrorUser) error {
	replies, err := ctl.Do(ctx, []string{"ACL", "USERS"})
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, w := range want {
		keep[w.Name] = true
	}
	del := []string{"ACL", "DELUSER"}
	for _, v := range replies[1].Array() {
		if name := v.String(); strings.HasPrefix(name, policy.MirrorPrefix) && !keep[name] {
			del = append(del, name)
		}
	}
	if len(del) > 2 {
		_, err = ctl.Do(ctx, del)
	}
	return err
}

// pool returns the pool of connections authenticated as the mirror user
// name, or why there is none.
func (m *scriptUsers) pool(name string) (*pool.Pool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	su := m.users[name]
	switch {
	case m.closed:
		return nil, ErrServerClosed
	case su == nil:
		return nil, errors.New("not set up")
	case su.err != nil && !errors.Is(su.err, errNoMirrorInCluster):
		m.retry(su)
	}
	switch {
	case su.err != nil:
		return nil, su.err
	case su.pool != nil:
		return su.pool, nil
	}
	cfg, ok := m.upstream()
	if !ok {
		return nil, errNoMirrorInCluster
	}
	cfg.Username, cfg.Password = name, su.password
	cfg.MaxConns, cfg.MinIdleConns, cfg.SharedConns = 1, 0, 1
	p, err := pool.New(cfg)
	if err != nil {
		return nil, err
	}
	su.pool = p
	return p, nil
}

// failed notes that connecting as the mirror user name failed with err.
// When Redis refused the login (the user was deleted or changed behind
// respguard's back), the mirror is set up again on its next script.
func (m *scriptUsers) failed(name string, err error) {
	var refused *pool.RedisError
	if !errors.As(err, &refused) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if su := m.users[name]; su != nil {
		su.close() // the next script dials again
		if !su.managed {
			su.err, su.tried = err, time.Time{}
		}
	}
}

// close closes every mirror's pool; the Redis users stay until the next
// start deletes them.
func (m *scriptUsers) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, su := range m.users {
		su.close()
	}
}

func (su *scriptUser) close() {
	if su.pool != nil {
		su.pool.Close()
		su.pool = nil
	}
}

// mirrorPassword derives the mirror user's password from respguard's own
// upstream credentials (HMAC-SHA256 keyed by them), so that every respguard
// in front of the same Redis, and every restart, sets the same password and
// none locks the others out; whoever can derive it already holds the
// upstream login, which has every right the mirror has.
func mirrorPassword(upstream pool.Config, name string) string {
	mac := hmac.New(sha256.New, []byte(upstream.Username+"\x00"+upstream.Password))
	mac.Write([]byte(name))
	return hex.EncodeToString(mac.Sum(nil))
}

// runScriptAs runs a script command of a restricted user on a connection
// authenticated as its mirror user. It waits for the client's earlier
// replies before sending and for the script's reply before returning, so
// the script runs in the client's command order although it travels on
// another connection. Inside MULTI or while subscribed the client's
// commands must stay on its dedicated connection: the script is refused.
func (s *session) runScriptAs(ctx context.Context, seq uint64, identity string, cmd resp.Command) {
	if s.ded.has(modeMulti | modeStreaming) {
		// Refused at queue time inside MULTI: Redis discards the transaction at EXEC.
		s.refuse(seq, resp.AppendError(nil, fmt.Sprintf("NOPERM respguard runs the scripts of user '%s' as Redis user '%s' on a connection of their own, "+
			"so not inside MULTI or while subscribed", s.user.Name(), identity)))
		return
	}
	p, err := s.srv.scripts.pool(identity)
	if err != nil {
		s.out.local(seq, resp.AppendError(nil, policy.MirrorUnavailableText(s.user.Name(), identity, err.Error())))
		return
	}
	if !s.out.waitBefore(seq) {
		return
	}
	pipe, err := p.Shared(ctx, s.db, s.proto, s.id)
	if err == nil {
		err = pipe.Send(s.out, seq, cmd.Raw, cmd.Args)
	}
	if err != nil {
		s.srv.scripts.failed(identity, err)
		s.out.local(seq, pool.UnavailableReply(err))
		return
	}
	s.out.waitBefore(seq + 1)
}
