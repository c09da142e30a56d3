package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Redis 7.0's authentication error texts (RESP error lines without '-').
const (
	WrongPassText = "WRONGPASS invalid username-password pair or user is disabled."
	NoAuthText    = "NOAUTH Authentication required."
)

// ErrWrongPass is returned by Authenticate; its text is Redis's reply.
var ErrWrongPass = errors.New(WrongPassText)

// DefaultUserName is the user unauthenticated clients get.
const DefaultUserName = "default"

// defaultUserRules are Redis's rules for an unconfigured default user.
const defaultUserRules = "on nopass ~* &* +@all"

// Policy is the compiled form of a Config. It is immutable after New and
// safe for concurrent use; hot reload builds a new Policy and swaps it in.
type Policy struct {
	cmds        *Commands
	users       map[string]*User
	defaultUser *User
	audit       bool
	renamedTo   map[string][]byte // new name (lower case) -> original name
	renamedAway map[string]bool   // original names (lower case) no longer callable

	scriptIdentity  string            // ScriptsRefuse or ScriptsMirror
	scriptPasswords map[string]string // proxy user -> password of its Config.ScriptUsers user
}

// New validates cfg, reads its password files and compiles it against cmds
// (nil means BuiltinCommands).
func New(cfg Config, cmds *Commands) (*Policy, error) {
	if cmds == nil {
		cmds = BuiltinCommands()
	}
	if err := cfg.validate(cmds); err != nil {
		return nil, err
	}
	p := &Policy{cmds: cmds, users: map[string]*User{}, audit: cfg.Mode == ModeAudit, scriptIdentity: cfg.ScriptIdentity}
	if p.scriptIdentity == "" {
		p.scriptIdentity = ScriptsRefuse
	}
	for name, rules := range cfg.Users {
		u, err := buildUser(name, rules, cfg, cmds)
		if err != nil {
			return nil, err
		}
		p.users[name] = u
	}
	if p.users[DefaultUserName] == nil {
		u, err := buildUser(DefaultUserName, defaultUserRules, cfg, cmds)
		if err != nil {
			return nil, err
		}
		p.users[DefaultUserName] = u
	}
	p.defaultUser = p.users[DefaultUserName]
	p.compileRename(cfg.Rename)
	if err := p.loadScriptUsers(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// loadScriptUsers points mapped users at the operator's Redis users and
// reads their passwords.
func (p *Policy) loadScriptUsers(cfg Config) error {
	p.scriptPasswords = map[string]string{}
	for name, redisUser := range cfg.ScriptUsers {
		password, err := readPasswordFile("policy.script_password_files."+name, cfg.ScriptPasswordFiles[name])
		if err != nil {
			return err
		}
		p.users[name].mirror = redisUser
		p.scriptPasswords[name] = password
	}
	return nil
}

// readPasswordFile reads a password file: its content trimmed of white space.
func readPasswordFile(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	password := strings.TrimSpace(string(b))
	if password == "" {
		return "", fmt.Errorf("%s: %s is empty", key, path)
	}
	return password, nil
}

// buildUser applies the user's rules, its password file and the preset.
func buildUser(name, rules string, cfg Config, cmds *Commands) (*User, error) {
	u := newUser(name, cmds)
	if err := u.applyRules(cmds, rules); err != nil {
		return nil, fmt.Errorf("policy.users.%s: %w", name, err)
	}
	if path := cfg.PasswordFiles[name]; path != "" {
		password, err := readPasswordFile("policy.password_files."+name, path)
		if err != nil {
			return nil, err
		}
		u.applyPassword(">" + password)
	}
	for _, rule := range strings.Fields(presets[cfg.DefaultRules]) {
		_ = u.applyRule(cmds, rule) // a preset rule for a command this Redis lacks is moot
	}
	return u, nil
}

func (p *Policy) compileRename(rename map[string]string) {
	if len(rename) == 0 {
		return
	}
	p.renamedTo, p.renamedAway = map[string][]byte{}, map[string]bool{}
	for from, to := range rename {
		from, to = strings.ToLower(from), strings.ToLower(to)
		p.renamedAway[from] = true
		if to != "" {
			p.renamedTo[to] = []byte(from)
		}
	}
	for to := range p.renamedTo {
		delete(p.renamedAway, to) // renamed onto itself: still callable
	}
}

// Commands returns the table the policy was compiled against.
func (p *Policy) Commands() *Commands { return p.cmds }

// Audit reports whether the policy is in audit mode.
func (p *Policy) Audit() bool { return p.audit }

// DefaultUser returns the user unauthenticated clients get; never nil.
func (p *Policy) DefaultUser() *User { return p.defaultUser }

// User returns the named user, or nil if there is none.
func (p *Policy) User(name string) *User { return p.users[name] }

// AuthRequired reports whether clients must AUTH before running commands:
// the default user is off or needs a password. Redis replies NoAuthText.
func (p *Policy) AuthRequired() bool {
	return !p.defaultUser.enabled || !p.defaultUser.noPass
}

// Authenticate checks a username-password pair like Redis's AUTH (AUTH with
// only a password uses DefaultUserName). It fails with ErrWrongPass for an
// unknown or disabled user or a wrong password.
func (p *Policy) Authenticate(name, password string) (*User, error) {
	u := p.users[name]
	if u == nil {
		newUser("", p.cmds).passwordOK(password) // same work as a known user
		return nil, ErrWrongPass
	}
	if !u.enabled || !u.passwordOK(password) {
		return nil, ErrWrongPass
	}
	return u, nil
}

// Resolve maps the command name a client sent to the real command name,
// applying Config.Rename. ok is false when the name was renamed away or
// disabled: the client gets Redis's unknown-command error. real is name
// itself (no copy) when nothing applies, else a shared slice that must not
// be modified. It does not allocate.
func (p *Policy) Resolve(name []byte) (real []byte, ok bool) {
	if p.renamedTo == nil || len(name) > maxNameLen {
		return name, true
	}
	var buf [maxNameLen]byte
	lower := lowerInto(buf[:0], name)
	if orig, found := p.renamedTo[string(lower)]; found {
		return orig, true
	}
	return name, !p.renamedAway[string(lower)]
}
