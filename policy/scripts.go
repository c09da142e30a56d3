package policy

import (
	"fmt"
	"sort"
)

// Values of Config.ScriptIdentity.
const (
	// ScriptsRefuse refuses scripts to users whose rules restrict anything.
	ScriptsRefuse = "refuse"
	// ScriptsMirror runs their scripts as a Redis user with the same rules.
	ScriptsMirror = "mirror"
)

// MirrorPrefix starts the name of every Redis user respguard creates to run
// a proxy user's scripts: the mirror of user "app" is "respguard-mirror:app".
const MirrorPrefix = "respguard-mirror:"

// MirrorName is the name of the Redis user that mirrors the proxy user name.
func MirrorName(name string) string { return MirrorPrefix + name }

// ReasonScript is Decision.Reason for a script refused because respguard
// cannot make Redis judge its calls by the user's rules.
const ReasonScript = "script"

// runsScriptName reports the commands that run Lua code calling back into
// Redis with the caller's rights (redis.call). SCRIPT LOAD and FUNCTION
// LOAD only compile code (a library cannot call Redis while it loads), so
// they are judged like any other command.
func runsScriptName(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// RunsScript reports whether args (args[0] a command name, any case) runs a
// script or function.
func (p *Policy) RunsScript(args [][]byte) bool {
	cmd := p.cmds.lookup(args)
	return cmd != nil && cmd.runsScript
}

// scriptsRestricted reports whether u's scripts would get more rights from
// respguard's upstream user than u's rules give: u's keys, channels or
// commands are restricted, or policy.rename hides commands.
func (p *Policy) scriptsRestricted(u *User) bool {
	return !u.allKeys || !u.allChannels || !u.allCommands || len(p.renamedAway) > 0
}

// checkScript decides a script command that u may run by its ACL rules.
func (p *Policy) checkScript(u *User) Decision {
	if !p.scriptsRestricted(u) {
		return Decision{Allowed: true}
	}
	if p.scriptIdentity == ScriptsMirror {
		return Decision{Allowed: true, Identity: u.mirror}
	}
	return Decision{Audit: p.audit, Err: ScriptRefusalText(u.name), Reason: ReasonScript}
}

// ScriptRefusalText is the error line (without '-') for a script of a
// restricted user when policy.script_identity is refuse.
func ScriptRefusalText(user string) string {
	return fmt.Sprintf("NOPERM respguard refuses scripts for user '%s': its rules restrict keys, channels or commands, "+
		"and Redis would judge every redis.call by respguard's own upstream user; "+
		"set policy.script_identity: mirror to run scripts as a Redis user with the same rules", user)
}

// MirrorUnavailableText is the error line (without '-') for a script of a
// restricted user whose Redis user (a mirror, or the operator's) is not
// available; why says what failed.
func MirrorUnavailableText(user, redisUser, why string) string {
	return fmt.Sprintf("NOPERM respguard refuses scripts for user '%s': its Redis user '%s' is not available (%s); "+
		"respguard's upstream user needs ACL SETUSER (and a standalone or Sentinel upstream), "+
		"or map the user with policy.script_users, or set policy.script_identity: refuse",
		user, redisUser, why)
}

// MirrorUser is a Redis user respguard keeps so that Redis judges a proxy
// user's scripts by that user's rules.
type MirrorUser struct {
	Name  string   // MirrorName of the proxy user, or its Config.ScriptUsers entry
	Rules []string // ACL SETUSER rules after "reset on >password"; nil for an operator's user
	// Password is the operator's user's password (Config.ScriptPasswordFiles);
	// "" for a mirror respguard creates.
	Password string
}

// OperatorManaged reports whether the operator created the user: respguard
// only logs in as it, never changes or deletes it.
func (m MirrorUser) OperatorManaged() bool { return m.Password != "" }

// Mirrors lists the Redis users needed to run restricted users' scripts
// (none unless Config.ScriptIdentity is ScriptsMirror), sorted by name. A
// mirror's rules are the user's key, channel and command rules, the
// preset's, and "-cmd" for every command policy.rename renames or
// disables, so a script cannot reach a command the client cannot.
func (p *Policy) Mirrors() []MirrorUser {
	if p.scriptIdentity != ScriptsMirror {
		return nil
	}
	var out []MirrorUser
	for _, name := range p.ACLUsers() {
		u := p.users[name]
		switch {
		case !u.enabled || !p.scriptsRestricted(u):
		case p.scriptPasswords[name] != "":
			out = append(out, MirrorUser{Name: u.mirror, Password: p.scriptPasswords[name]})
		default:
			out = append(out, MirrorUser{Name: u.mirror, Rules: p.mirrorRules(u)})
		}
	}
	return out
}

func (p *Policy) mirrorRules(u *User) []string {
	rules := u.describeKeys()
	if u.allChannels {
		rules = append(rules, "&*")
	}
	for _, c := range u.channels {
		rules = append(rules, "&"+c)
	}
	if u.startAll {
		rules = append(rules, "+@all")
	}
	rules = append(rules, u.rules...)
	hidden := make([]string, 0, len(p.renamedAway))
	for name := range p.renamedAway {
		hidden = append(hidden, "-"+name)
	}
	sort.Strings(hidden)
	return append(rules, hidden...)
}
