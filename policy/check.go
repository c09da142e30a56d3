package policy

import (
	"fmt"
	"strings"
)

// Reasons for a denial, in Decision.Reason.
const (
	ReasonCommand = "command" // the user may not run the command
	ReasonKey     = "key"     // a key argument matches none of the user's key patterns
	ReasonChannel = "channel" // a channel argument matches none of the user's channel patterns
	ReasonArity   = "arity"   // wrong number of arguments (or an unknown RESPGUARD subcommand): Redis would refuse it anyway
	ReasonAuth    = "auth"    // no user (the client must authenticate)
	// ReasonSortPattern: a SORT BY or GET pattern needs read access to
	// every key, which the user lacks; Decision.Key is the pattern.
	ReasonSortPattern = "sort_pattern"
)

// Redis 7.0's NOPERM texts for key and channel denials.
const (
	keyDeniedText     = "NOPERM this user has no permissions to access one of the keys used as arguments"
	channelDeniedText = "NOPERM this user has no permissions to access one of the channels used as arguments"
)

// Decision is Check's verdict on one command.
type Decision struct {
	// Allowed means forward the command.
	Allowed bool
	// Audit means the command is denied but the policy is in audit mode:
	// forward it anyway and log or count the would-be denial.
	Audit bool
	// Err is the error reply for a denied command: a RESP error line
	// without '-' and CRLF, Redis 7.0's text (NOPERM ..., ERR wrong number
	// of arguments ...). Empty when allowed.
	Err string
	// Reason is one of the Reason constants when denied.
	Reason string
	// Key is the denied key or channel for ReasonKey and ReasonChannel.
	Key string
	// Identity, when set on an allowed script command (EVAL, FCALL, ...),
	// is the Redis user the proxy must run it as (see Policy.Mirrors); if
	// that user is not available the proxy must refuse the command with
	// MirrorUnavailableText, never run it as its own upstream user.
	Identity string
}

// Forward reports whether the proxy should send the command upstream:
// allowed, or denied in audit mode.
func (d Decision) Forward() bool { return d.Allowed || d.Audit }

// denial is the result of checking permissions: kind is "" when allowed;
// arg is the index of the offending key or channel.
type denial struct {
	kind string
	arg  int
}

// Check decides whether u may run args (args[0] is the command name, after
// Resolve, in any case). It does not allocate when the command is allowed.
// A command the table does not know is allowed only to users with
// AllCommands. Like Redis's ACL check (and ACL DRYRUN), Check does not look
// at whether u is enabled: pass nil for a client that has not authenticated
// while AuthRequired, and Check answers NoAuthText to all but AUTH/HELLO.
func (p *Policy) Check(u *User, args [][]byte) Decision {
	if len(args) == 0 {
		return Decision{Err: "ERR empty command", Reason: ReasonCommand}
	}
	cmd := p.cmds.lookup(args)
	if u == nil {
		if cmd != nil && cmd.noAuth {
			return Decision{Allowed: true}
		}
		return Decision{Err: NoAuthText, Reason: ReasonAuth}
	}
	if cmd == nil {
		if d, ok := respguardUnknownSub(p.cmds, args); ok {
			return d
		}
		if u.allCommands {
			return Decision{Allowed: true}
		}
		return p.deny(denial{kind: ReasonCommand}, unknownName(p.cmds, args), args)
	}
	if !arityOK(cmd.info.Arity, len(args)) {
		return execAbort(cmd, Decision{Err: arityText(cmd), Reason: ReasonArity})
	}
	d := checkPerm(u, cmd, args)
	if d.kind == "" {
		if dec, denied := p.checkSortPatterns(u, cmd, args); denied {
			return dec
		}
		if cmd.runsScript {
			return p.checkScript(u)
		}
		return Decision{Allowed: true}
	}
	return execAbort(cmd, p.deny(d, cmd.info.Name, args))
}

// ExecAbortPrefix starts Redis's reply to a rejected EXEC, and
// ExecAbortText is its reply to EXEC after a command queued in MULTI was
// rejected: a proxy that denies a command inside MULTI must answer the
// following EXEC with ExecAbortText (and DISCARD upstream), as Redis does.
const (
	ExecAbortPrefix = "EXECABORT Transaction discarded because of: "
	ExecAbortText   = "EXECABORT Transaction discarded because of previous errors."
)

// execAbort rewrites a rejection of EXEC as Redis's rejectCommand does
// (its arity error then has no "ERR " code: "...because of: wrong number...").
func execAbort(cmd *command, d Decision) Decision {
	if cmd.info.Name == "exec" {
		d.Err = ExecAbortPrefix + strings.TrimPrefix(d.Err, "ERR ")
	}
	return d
}

func (p *Policy) deny(d denial, name string, args [][]byte) Decision {
	dec := Decision{Audit: p.audit, Reason: d.kind}
	switch d.kind {
	case ReasonCommand:
		dec.Err = fmt.Sprintf("NOPERM this user has no permissions to run the '%s' command", name)
	case ReasonKey:
		dec.Err, dec.Key = keyDeniedText, string(args[d.arg])
	case ReasonChannel:
		dec.Err, dec.Key = channelDeniedText, string(args[d.arg])
	}
	return dec
}

func arityText(cmd *command) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", cmd.info.Name)
}

// unknownName names an unknown command ("foo", or "config|foo" for an
// unknown subcommand of a known container) in lower case.
func unknownName(cmds *Commands, args [][]byte) string {
	name := strings.ToLower(string(args[0]))
	if len(args) > 1 && cmds.IsKnown(args[0]) {
		name += "|" + strings.ToLower(string(args[1]))
	}
	return name
}

// checkPerm mirrors Redis 7.0's ACLSelectorCheckCmd for the root selector.
func checkPerm(u *User, cmd *command, args [][]byte) denial {
	if !u.allCommands && !cmd.noAuth && !u.commandBit(cmd.id) && !u.firstArgAllowed(cmd.id, args) {
		return denial{kind: ReasonCommand}
	}
	if !u.allKeys {
		if d := checkKeys(u, cmd, args); d.kind != "" {
			return d
		}
	}
	if !u.allChannels && cmd.channels != channelsNone {
		from, to := cmd.channels.channelArgs(len(args))
		for i := from; i < to; i++ {
			if !u.channelAllowed(args[i], cmd.channels == channelsPatterns) {
				return denial{kind: ReasonChannel, arg: i}
			}
		}
	}
	return denial{}
}

func checkKeys(u *User, cmd *command, args [][]byte) denial {
	var buf [maxInlineRanges]keyRange
	for _, r := range cmd.keyRanges(args, buf[:0]) {
		perm := r.flags.perm()
		for i := r.first; i <= r.last && i < len(args); i += r.step {
			if !u.keyAllowed(args[i], perm) {
				return denial{kind: ReasonKey, arg: i}
			}
		}
	}
	return denial{}
}

// perm is the access a key with these spec flags needs (ACLSelectorCheckKey).
func (f KeyFlags) perm() keyPerm {
	var p keyPerm
	if f&KeyAccess != 0 {
		p |= permRead
	}
	if f&(KeyInsert|KeyDelete|KeyUpdate) != 0 {
		p |= permWrite
	}
	return p
}

// firstArgAllowed reports whether args[1] is an allowed first argument
// (+select|0 style rules).
func (u *User) firstArgAllowed(id int, args [][]byte) bool {
	if len(args) < 2 || u.firstArgs == nil {
		return false
	}
	for _, a := range u.firstArgs[id] {
		if equalFold(args[1], a) {
			return true
		}
	}
	return false
}
