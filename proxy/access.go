package proxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/proxy/resp"
)

// SetPolicy swaps in a new policy atomically (hot reload). Sessions judge
// their next command by it; clients whose user was removed or switched off
// are disconnected now, and so are subscribers whose user may no longer
// hold one of their subscriptions (as Redis 7.0 does on ACL SETUSER; in
// audit mode they are only logged).
//
// Before the swap it brings the Redis users that run restricted users'
// scripts in line with p (policy.script_identity: mirror).
func (s *Server) SetPolicy(p *policy.Policy) {
	s.scripts.sync(context.Background(), p)
	s.policy.Store(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		s.enforcePolicy(p, sess)
	}
}

// enforcePolicy disconnects sess if p removed or disabled its user, or no
// longer lets that user hold one of its subscriptions (audit mode: only
// logged). SetPolicy runs it on every session once p is in force, and a
// session runs it on itself after a command during which p came in (see
// session.caughtUp): whichever of the two comes later sees the session's
// user and subscriptions as that command left them. Any goroutine.
func (s *Server) enforcePolicy(p *policy.Policy, sess *session) {
	name := *sess.userName.Load()
	if name == "" {
		return
	}
	u := p.User(name)
	if u == nil || !u.Enabled() {
		s.log.Info("disconnecting client: its user was removed or disabled", "client", sess.addr, "user", name)
		sess.hangUp()
		return
	}
	if channel, revoked := sess.subs.revokedBy(u); revoked {
		s.log.Info("disconnecting client: its user may no longer hold its subscription", "client", sess.addr, "user", name, "channel", channel, "audit", p.Audit())
		if !p.Audit() {
			sess.hangUp()
		}
	}
}

// caughtUp has the policy in force enforced on the session if it came in
// while the last command ran: SetPolicy may have looked at the session
// before that command changed its user or subscriptions (a SUBSCRIBE
// checked under the old policy). Reader goroutine, after each command.
func (s *session) caughtUp() {
	if p := s.srv.policy.Load(); p != s.pol {
		s.srv.enforcePolicy(p, s)
	}
}

// Policy returns the policy in force.
func (s *Server) Policy() *policy.Policy { return s.policy.Load() }

// refreshUser re-reads the session's user from a policy that was swapped in
// since its last command. false means the user is gone: end the session.
func (s *session) refreshUser(p *policy.Policy) bool {
	if s.pol == p {
		return true
	}
	s.pol = p
	if s.user == nil {
		if !p.AuthRequired() {
			s.setUser(p.DefaultUser())
		}
		return true
	}
	u := p.User(s.user.Name())
	if u == nil || !u.Enabled() {
		return false
	}
	if u.Describe() != s.user.Describe() {
		s.discardTxOnRuleChange()
	}
	s.setUser(u)
	return true
}

// discardTxOnRuleChange makes the open transaction's EXEC answer EXECABORT
// (and DISCARD upstream). Redis 7.0 re-judges queued commands at EXEC and
// fails those the changed rules deny; respguard judged them when they were
// queued and does not keep them, so it discards the whole transaction:
// stricter than Redis, never looser.
func (s *session) discardTxOnRuleChange() {
	s.ded.mu.Lock()
	defer s.ded.mu.Unlock()
	if s.ded.has(modeMulti) {
		s.ded.tx.refused = true
	}
}

func (s *session) setUser(u *policy.User) {
	s.user = u
	name := ""
	if u != nil {
		name = u.Name()
	}
	s.userName.Store(&name)
}

// userLabel names the session's user for telemetry.
func (s *session) userLabel() string {
	if s.user == nil {
		return ""
	}
	return s.user.Name()
}

// authenticate answers AUTH [user] password from the policy, with Redis 7's replies.
func (s *session) authenticate(args [][]byte) []byte {
	switch {
	case len(args) < 2:
		return wrongArgs("auth")
	case len(args) > 3:
		return resp.AppendError(nil, "ERR syntax error")
	}
	name, pass := policy.DefaultUserName, string(args[1])
	if len(args) == 3 {
		name, pass = string(args[1]), string(args[2])
	} else if d := s.pol.DefaultUser(); d != nil && d.NoPass() && d.Enabled() {
		return resp.AppendError(nil, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	}
	attempt := s.srv.authReserve(s.addr, s.limiterUser(name), pass)
	if attempt.refused {
		s.srv.authRateLimited(s.addr, name, attempt.first)
		return resp.AppendError(nil, AuthRateLimitedText)
	}
	if attempt.wait > 0 && !s.srv.pause(attempt.wait) {
		attempt.cancel()
		return resp.AppendError(nil, AuthRateLimitedText)
	}
	u, err := s.pol.Authenticate(name, pass)
	attempt.done(err == nil)
	if err != nil {
		s.srv.authFailed(s.addr, name, attempt.charged)
		return resp.AppendError(nil, policy.WrongPassText)
	}
	s.setUser(u)
	return resp.AppendSimple(nil, "OK")
}

// limiterUser is the user name failures are accounted to: the name itself
// for a user of the policy, one shared name for all others (so made-up
// names cannot crowd the limiter's memory).
func (s *session) limiterUser(name string) string {
	if s.pol.User(name) == nil {
		return ""
	}
	return name
}

func (s *Server) authReserve(addr, user, password string) authAttempt {
	return s.authLimit.Load().reserve(clientIP(addr), user, password)
}

// authFailed counts a wrong password. A repeat of a recent wrong password
// (newGuess false: a misconfigured client retrying) is logged at debug
// level only, so a retry loop does not flood the log.
func (s *Server) authFailed(addr, user string, newGuess bool) {
	s.countAuthFailure()
	level := slog.LevelWarn
	if !newGuess && s.authLimit.Load() != nil {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "authentication failed", "client", addr, "user", user)
}

// authRateLimited counts a refused guess; the first refusal of a spell is
// logged (not each one: a brute force must not flood the log).
func (s *Server) authRateLimited(addr, user string, first bool) {
	s.countAuthFailure()
	if first {
		s.log.Warn("authentication rate limited: too many different wrong passwords for this user from this address",
			"client", addr, "user", user)
	}
}

func (s *Server) countAuthFailure() {
	s.stats.authFailures.Add(1)
	if s.tel != nil {
		s.tel.AuthFailure()
	}
}

// denied reports a policy denial (or, in audit mode, a would-be denial).
func (s *session) denied(name string, d policy.Decision) {
	if s.srv.tel != nil {
		reason := d.Reason
		if d.Audit {
			reason = "audit_" + reason
		}
		s.srv.tel.PolicyDenied(name, reason)
	}
	if d.Audit {
		s.srv.log.Warn("policy audit: command would be denied", "client", s.addr, "user", s.userLabel(),
			"command", name, "reason", d.Reason, "key", d.Key, "error", d.Err)
		return
	}
	s.srv.log.Debug("policy denied command", "client", s.addr, "user", s.userLabel(),
		"command", name, "reason", d.Reason, "key", d.Key)
}

// aclLocal answers ACL WHOAMI, LIST, USERS, DRYRUN and CAT from the policy.
func (s *session) aclLocal(args [][]byte) []byte {
	p := s.pol
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "whoami":
		if len(args) != 2 {
			return wrongArgs("acl|whoami")
		}
		return resp.AppendBulkString(nil, s.userLabel())
	case "list", "users":
		if len(args) != 2 {
			return wrongArgs("acl|" + sub)
		}
		lines := p.ACLList()
		if sub == "users" {
			lines = p.ACLUsers()
		}
		return appendStrings(nil, lines)
	case "cat":
		if len(args) > 3 {
			return wrongArgs("acl|cat")
		}
		cat := ""
		if len(args) == 3 {
			cat = string(args[2])
		}
		names, errLine := p.ACLCat(cat)
		if errLine != "" {
			return resp.AppendError(nil, errLine)
		}
		return appendStrings(nil, names)
	case "dryrun":
		if len(args) < 4 {
			return wrongArgs("acl|dryrun")
		}
		r := p.DryRun(string(args[2]), args[3:])
		switch {
		case r.OK:
			return resp.AppendSimple(nil, "OK")
		case r.Err != "":
			return resp.AppendError(nil, r.Err)
		default:
			return resp.AppendBulkString(nil, r.Denial)
		}
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'", args[1]))
}

func appendStrings(b []byte, list []string) []byte {
	b = resp.AppendArray(b, len(list))
	for _, s := range list {
		b = resp.AppendBulkString(b, s)
	}
	return b
}

// unknownCommand is Redis 7's reply to a command it does not know (here: one
// renamed away or disabled by policy.rename), byte for byte: Redis formats
// the name and arguments with C's %.*s, which stops at a NUL byte and counts
// bytes; AppendError turns CR and LF into spaces as Redis does.
func unknownCommand(args [][]byte) []byte {
	b := append(make([]byte, 0, 160), "ERR unknown command '"...)
	b = append(b, cString(args[0], 128)...)
	b = append(b, "', with args beginning with: "...)
	var quoted []byte
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		room := 128 - len(quoted)
		quoted = append(quoted, '\'')
		quoted = append(quoted, cString(a, room)...)
		quoted = append(quoted, "' "...)
	}
	return resp.AppendError(nil, string(append(b, quoted...)))
}

// cString is b as C's "%.*s" prints it with precision n: up to the first
// NUL byte, at most n bytes.
func cString(b []byte, n int) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return b[:min(len(b), n)]
}
