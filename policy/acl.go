package policy

import (
	"fmt"
	"sort"
	"strings"
)

// ACLAction says how the proxy handles an ACL subcommand.
type ACLAction uint8

const (
	// ACLForward: send it to Redis (HELP, GENPASS, unknown subcommands,
	// which Redis answers with its own error).
	ACLForward ACLAction = iota
	// ACLLocal: answer from respguard's policy (WHOAMI, LIST, USERS,
	// DRYRUN, CAT) with the Policy methods below, after Check allows it.
	ACLLocal
	// ACLRefuse: reply with ACLRefusalText; Redis's own users are not
	// respguard's users, so changing or reading them through the proxy
	// would mislead (SETUSER, DELUSER, LOAD, SAVE, GETUSER, LOG).
	ACLRefuse
)

var aclActions = map[string]ACLAction{
	"whoami": ACLLocal, "list": ACLLocal, "users": ACLLocal, "dryrun": ACLLocal, "cat": ACLLocal,
	"setuser": ACLRefuse, "deluser": ACLRefuse, "load": ACLRefuse, "save": ACLRefuse,
	"getuser": ACLRefuse, "log": ACLRefuse,
}

// ACLSubcommand classifies the subcommand of ACL (args[1] of "ACL ...", any case).
func ACLSubcommand(sub []byte) ACLAction {
	if len(sub) > maxNameLen {
		return ACLForward
	}
	var buf [maxNameLen]byte
	return aclActions[string(lowerInto(buf[:0], sub))]
}

// ACLRefusalText is the error line (without '-') for a refused ACL subcommand.
func ACLRefusalText(sub []byte) string {
	return fmt.Sprintf("ERR ACL %s is not available through respguard: users and rules come from the proxy's policy configuration",
		strings.ToUpper(string(sub)))
}

// DryRunReply is the answer to ACL DRYRUN. Exactly one field is set: OK
// (reply +OK), Denial (reply as a bulk string, Redis 7.0's text) or Err
// (an error line without '-').
type DryRunReply struct {
	OK     bool
	Denial string
	Err    string
}

// DryRun answers ACL DRYRUN username command [arg ...] as Redis 7.0 does,
// from this policy. args[0] is the command name. It ignores audit mode and
// whether the user is enabled, like Redis.
func (p *Policy) DryRun(username string, args [][]byte) DryRunReply {
	u := p.users[username]
	if u == nil {
		return DryRunReply{Err: fmt.Sprintf("ERR User '%s' not found", username)}
	}
	cmd := p.cmds.lookup(args)
	if cmd == nil {
		return DryRunReply{Err: fmt.Sprintf("ERR Command '%s' not found", argString(args, 0))}
	}
	if !arityOK(cmd.info.Arity, len(args)) {
		return DryRunReply{Err: arityText(cmd)}
	}
	switch d := checkPerm(u, cmd, args); d.kind {
	case ReasonCommand:
		return DryRunReply{Denial: fmt.Sprintf("This user has no permissions to run the '%s' command", cmd.info.Name)}
	case ReasonKey:
		return DryRunReply{Denial: fmt.Sprintf("This user has no permissions to access the '%s' key", args[d.arg])}
	case ReasonChannel:
		return DryRunReply{Denial: fmt.Sprintf("This user has no permissions to access the '%s' channel", args[d.arg])}
	}
	return DryRunReply{OK: true}
}

func argString(args [][]byte, i int) string {
	if i < len(args) {
		return string(args[i])
	}
	return ""
}

// ACLUsers answers ACL USERS: the user names, sorted.
func (p *Policy) ACLUsers() []string {
	names := make([]string, 0, len(p.users))
	for name := range p.users {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ACLList answers ACL LIST: one "user <name> <rules>" line per user, sorted
// by name, with passwords only as #<sha256>. The command rules are the
// user's rules in order (Redis 7.2's form), not Redis 7.0's recomputed
// category summary, so the text can differ from 7.0's for the same access.
func (p *Policy) ACLList() []string {
	lines := make([]string, 0, len(p.users))
	for _, name := range p.ACLUsers() {
		lines = append(lines, "user "+name+" "+p.users[name].Describe())
	}
	return lines
}

// ACLCat answers ACL CAT: with no category, the category names; with one,
// the full names of its commands and subcommands. errLine is Redis's error
// (without '-') for an unknown category.
func (p *Policy) ACLCat(category string) (names []string, errLine string) {
	if category == "" {
		return p.cmds.Categories(), ""
	}
	names, ok := p.cmds.CategoryCommands(category)
	if !ok {
		return nil, fmt.Sprintf("ERR Unknown category '%s'", category)
	}
	return names, ""
}

// Describe returns the user's rules as ACL LIST shows them after the name.
func (u *User) Describe() string {
	var parts []string
	if u.enabled {
		parts = append(parts, "on")
	} else {
		parts = append(parts, "off")
	}
	if u.noPass {
		parts = append(parts, "nopass")
	}
	for _, h := range u.passwords {
		parts = append(parts, "#"+h)
	}
	parts = append(parts, u.describeKeys()...)
	if u.allChannels {
		parts = append(parts, "&*")
	} else {
		parts = append(parts, "resetchannels")
		for _, c := range u.channels {
			parts = append(parts, "&"+c)
		}
	}
	if u.startAll {
		parts = append(parts, "+@all")
	} else {
		parts = append(parts, "-@all")
	}
	return strings.Join(append(parts, u.describeRules()...), " ")
}

func (u *User) describeKeys() []string {
	if u.allKeys {
		return []string{"~*"}
	}
	var parts []string
	for _, k := range u.keys {
		prefix := "~"
		switch {
		case k.perm == permRead:
			prefix = "%R~"
		case k.perm == permWrite:
			prefix = "%W~"
		case k.pattern == "*":
			prefix = "%RW~" // "~*" would mean allkeys, which this pattern is not
		}
		parts = append(parts, prefix+k.pattern)
	}
	return parts
}

// describeRules lists command rules, first-arg rules included.
func (u *User) describeRules() []string { return u.rules }
