package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// RuleError is a rule Redis's ACL SETUSER would reject; Msg is Redis 7.0's
// explanation.
type RuleError struct {
	Rule string
	Msg  string
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %q: %s", e.Rule, e.Msg) }

// Redis 7.0's ACL SETUSER error explanations (ACLSetUserStringError).
const (
	msgUnknownCommand = "Unknown command or category name in ACL"
	msgSyntax         = "Syntax error"
	msgKeysAfterAll   = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
	msgChansAfterAll  = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
	msgNoSuchPassword = "The password you are trying to remove from the user does not exist"
	msgBadHash        = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
	msgFirstArgOfSub  = "Allowing first-arg of a subcommand is not supported"
	msgSelectors      = "selectors (...) are not supported by respguard"
)

// newUser returns a user in the state ACL SETUSER starts from: off, no
// passwords, keys, channels or commands.
func newUser(name string, cmds *Commands) *User {
	return &User{name: name, mirror: MirrorName(name), allowed: make([]uint64, (len(cmds.all)+63)/64)}
}

// applyRules applies space-separated rules in order, like ACL SETUSER.
func (u *User) applyRules(cmds *Commands, rules string) error {
	for _, rule := range strings.Fields(rules) {
		if err := u.applyRule(cmds, rule); err != nil {
			return err
		}
	}
	return nil
}

// applyRule applies one rule; it mirrors Redis 7.0's ACLSetUser/ACLSetSelector.
func (u *User) applyRule(cmds *Commands, rule string) error {
	if u.applyKeyword(cmds, strings.ToLower(rule)) {
		return nil
	}
	var msg string
	switch rule[0] {
	case '>', '<', '#', '!':
		msg = u.applyPassword(rule)
	case '~', '%':
		msg = u.addKeyPattern(rule)
	case '&':
		msg = u.addChannel(rule[1:])
	case '+', '-':
		msg = u.applyCommandRule(cmds, rule)
	case '(':
		msg = msgSelectors
	default:
		msg = msgSyntax
	}
	if msg != "" {
		return &RuleError{Rule: rule, Msg: msg}
	}
	return nil
}

// applyKeyword applies the word rules; it reports false for other rules.
func (u *User) applyKeyword(cmds *Commands, word string) bool {
	switch word {
	case "on", "off":
		u.enabled = word == "on"
	case "nopass", "resetpass":
		u.noPass, u.passwords = word == "nopass", nil
	case "allkeys", "~*":
		u.allKeys, u.keys = true, nil
	case "resetkeys":
		u.allKeys, u.keys = false, nil
	case "allchannels", "&*":
		u.allChannels, u.channels = true, nil
	case "resetchannels":
		u.allChannels, u.channels = false, nil
	case "allcommands", "+@all", "nocommands", "-@all":
		u.setAllCommands(word == "allcommands" || word == "+@all")
	case "reset":
		for _, w := range []string{"resetpass", "resetkeys", "resetchannels", "off", "-@all"} {
			u.applyKeyword(cmds, w)
		}
	case "sanitize-payload", "skip-sanitize-payload", "clearselectors":
		// Accepted for compatibility; they do not change decisions.
	default:
		return false
	}
	return true
}

func (u *User) setAllCommands(on bool) {
	var fill uint64
	if on {
		fill = ^uint64(0)
	}
	for i := range u.allowed {
		u.allowed[i] = fill
	}
	u.allCommands, u.startAll = on, on
	u.firstArgs, u.rules = nil, nil
}

// applyPassword handles >clear, <clear, #hash and !hash.
func (u *User) applyPassword(rule string) string {
	hash := rule[1:]
	if rule[0] == '>' || rule[0] == '<' {
		sum := sha256.Sum256([]byte(rule[1:]))
		hash = hex.EncodeToString(sum[:])
	} else if !validHash(hash) {
		return msgBadHash
	}
	i := slices.Index(u.passwords, hash)
	switch {
	case rule[0] == '>' || rule[0] == '#':
		if i < 0 {
			u.passwords = append(u.passwords, hash)
		}
		u.noPass = false
	case i < 0:
		return msgNoSuchPassword
	default:
		u.passwords = slices.Delete(u.passwords, i, i+1)
	}
	return ""
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := range len(h) {
		if !('0' <= h[i] && h[i] <= '9' || 'a' <= h[i] && h[i] <= 'f') {
			return false
		}
	}
	return true
}

// addKeyPattern handles ~pattern and %R~ / %W~ / %RW~ patterns.
func (u *User) addKeyPattern(rule string) string {
	if u.allKeys {
		return msgKeysAfterAll
	}
	perm, offset := permAll, 1
	if rule[0] == '%' {
		perm = 0
		for ; offset < len(rule); offset++ {
			c := rule[offset]
			if (c == 'R' || c == 'r') && perm&permRead == 0 {
				perm |= permRead
			} else if (c == 'W' || c == 'w') && perm&permWrite == 0 {
				perm |= permWrite
			} else if c == '~' {
				offset++
				break
			} else {
				return msgSyntax
			}
		}
		if perm == 0 {
			return msgSyntax
		}
	}
	pattern := rule[offset:]
	for i := range u.keys {
		if u.keys[i].pattern == pattern {
			u.keys[i].perm |= perm
			return ""
		}
	}
	u.keys = append(u.keys, keyPattern{pattern: pattern, perm: perm})
	return ""
}

func (u *User) addChannel(pattern string) string {
	if u.allChannels {
		return msgChansAfterAll
	}
	if !slices.Contains(u.channels, pattern) {
		u.channels = append(u.channels, pattern)
	}
	return ""
}

// applyCommandRule handles +cmd, -cmd, +cmd|sub, -cmd|sub, +@cat, -@cat.
func (u *User) applyCommandRule(cmds *Commands, rule string) string {
	allow, name := rule[0] == '+', rule[1:]
	if strings.HasPrefix(name, "@") {
		return u.applyCategory(cmds, name[1:], allow)
	}
	top, sub, hasSub := strings.Cut(name, "|")
	if !allow || !hasSub {
		cmd := cmds.lookupFullName(name)
		if cmd == nil {
			return msgUnknownCommand
		}
		u.changePerm(cmd, allow)
		u.recordRule(allow, cmd.info.Name)
		return ""
	}
	cmd := cmds.lookupFullName(top)
	switch {
	case cmd == nil:
		return msgUnknownCommand
	case sub == "":
		return msgSyntax
	case cmd.subs != nil:
		if cmd = cmds.lookupFullName(name); cmd == nil {
			return msgUnknownCommand
		}
		u.changePerm(cmd, true)
	default:
		u.addFirstArg(cmd.id, sub)
	}
	u.recordRule(true, strings.ToLower(name))
	return ""
}

func (u *User) applyCategory(cmds *Commands, category string, allow bool) string {
	i, ok := cmds.catIndex[strings.ToLower(category)]
	if !ok {
		return msgUnknownCommand
	}
	for _, cmd := range cmds.all {
		if cmd.categories&(1<<i) != 0 {
			u.changePerm(cmd, allow)
		}
	}
	u.recordRule(allow, "@"+strings.ToLower(category))
	return ""
}

// changePerm mirrors ACLChangeSelectorPerm: the command and all its
// subcommands, forgetting allowed first arguments.
func (u *User) changePerm(cmd *command, allow bool) {
	u.setCommandBit(cmd.id, allow)
	delete(u.firstArgs, cmd.id)
	for _, sub := range cmd.subs {
		u.setCommandBit(sub.id, allow)
	}
}

func (u *User) addFirstArg(id int, arg string) {
	if u.firstArgs == nil {
		u.firstArgs = map[int][]string{}
	}
	for _, a := range u.firstArgs[id] {
		if strings.EqualFold(a, arg) {
			return
		}
	}
	u.firstArgs[id] = append(u.firstArgs[id], arg)
}

// recordRule keeps the command rules for ACL LIST as Redis 7 does: a rule
// replaces an earlier identical rule of either sign.
func (u *User) recordRule(allow bool, rule string) {
	u.rules = slices.DeleteFunc(u.rules, func(r string) bool { return r[1:] == rule })
	sign := "-"
	if allow {
		sign = "+"
	}
	u.rules = append(u.rules, sign+rule)
}
