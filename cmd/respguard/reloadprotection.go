package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
)

// loweredProtection describes what a reload from old to next gives up:
// users, rules a user loses or gains (see loosenedRules), renamed or
// disabled commands, the default rules (the production preset),
// enforcement, and every guard setting that refuses, caps or unlinks less.
// The reload is applied; this is what its WARN line lists.
func loweredProtection(old, next Config) []string {
	return append(loweredPolicy(old.Policy, next.Policy), loweredGuard(old.Guard, next.Guard)...)
}

func loweredPolicy(old, next policy.Config) []string {
	var out []string
	if gone := missingNames(old.Users, next.Users); len(gone) > 0 {
		out = append(out, "policy.users removed: "+strings.Join(gone, ", "))
	}
	for _, name := range sortedNames(next.Users) {
		if rules, ok := old.Users[name]; ok {
			if loosened := loosenedRules(rules, next.Users[name]); loosened != "" {
				out = append(out, "policy.users."+name+": "+loosened)
			}
		}
	}
	if gone := missingNames(old.Rename, next.Rename); len(gone) > 0 {
		out = append(out, "policy.rename entries removed: "+strings.Join(gone, ", "))
	}
	if old.DefaultRules != "" && next.DefaultRules != old.DefaultRules {
		out = append(out, fmt.Sprintf("policy.default_rules: %q -> %q", old.DefaultRules, next.DefaultRules))
	}
	if old.Mode != next.Mode && next.Mode == policy.ModeAudit {
		out = append(out, fmt.Sprintf("policy.mode: %q -> %q (denials are only logged)", old.Mode, next.Mode))
	}
	return out
}

// loosenedRules describes, for one user, the ACL rules that deny and are no
// longer there ("-keys", "off") and the rules that grant and are new
// ("+flushall", "~*", "on", "nopass"); "" if none. Rules are compared as
// written, not by what they add up to: a reordering or a rule written
// another way can be reported, a loosening through a rule neither list
// knows cannot. Passwords are never named.
func loosenedRules(old, next string) string {
	before, after := strings.Fields(old), strings.Fields(next)
	var dropped, added []string
	for _, r := range before {
		if denies(r) && !slices.Contains(after, r) {
			dropped = append(dropped, r)
		}
	}
	for _, r := range after {
		if grants(r) && !slices.Contains(before, r) {
			added = append(added, r)
		}
	}
	var parts []string
	if len(dropped) > 0 {
		parts = append(parts, "rules dropped: "+strings.Join(dropped, " "))
	}
	if len(added) > 0 {
		parts = append(parts, "rules added: "+strings.Join(added, " "))
	}
	return strings.Join(parts, "; ")
}

// denies reports whether an ACL rule takes something away from a user.
func denies(rule string) bool {
	switch strings.ToLower(rule) {
	case "off", "resetkeys", "resetchannels", "nocommands":
		return true
	}
	return strings.HasPrefix(rule, "-")
}

// grants reports whether an ACL rule gives a user something.
func grants(rule string) bool {
	switch strings.ToLower(rule) {
	case "on", "nopass", "allkeys", "allchannels", "allcommands":
		return true
	}
	return strings.HasPrefix(rule, "+") || strings.HasPrefix(rule, "~") || strings.HasPrefix(rule, "%") || strings.HasPrefix(rule, "&")
}

// loweredGuard describes the guard settings next relaxes against old.
func loweredGuard(old, next guard.Config) []string {
	var out []string
	if gone := missing(old.RequireTTL, next.RequireTTL); len(gone) > 0 {
		out = append(out, "guard.require_ttl patterns removed: "+strings.Join(gone, ", "))
	}
	out = append(out, loweredStreamCaps(old.StreamMaxlen, next.StreamMaxlen)...)
	if next.MaxElements > old.MaxElements {
		out = append(out, fmt.Sprintf("guard.max_elements: %d -> %d", old.MaxElements, next.MaxElements))
	}
	if rank(oversizeStrictness, next.Oversize, guard.OversizeReject) < rank(oversizeStrictness, old.Oversize, guard.OversizeReject) {
		out = append(out, fmt.Sprintf("guard.oversize: %q -> %q", old.Oversize, next.Oversize))
	}
	if rank(unlinkStrictness, next.Unlink.Mode, guard.UnlinkLarge) < rank(unlinkStrictness, old.Unlink.Mode, guard.UnlinkLarge) {
		out = append(out, fmt.Sprintf("guard.unlink.mode: %q -> %q", old.Unlink.Mode, next.Unlink.Mode))
	}
	if next.Unlink.MinElements > old.Unlink.MinElements {
		out = append(out, fmt.Sprintf("guard.unlink.min_elements: %d -> %d", old.Unlink.MinElements, next.Unlink.MinElements))
	}
	if next.Unlink.MinBytes > old.Unlink.MinBytes {
		out = append(out, fmt.Sprintf("guard.unlink.min_bytes: %d -> %d", old.Unlink.MinBytes, next.Unlink.MinBytes))
	}
	if old.FlushAsync && !next.FlushAsync {
		out = append(out, "guard.flush_async: true -> false")
	}
	return out
}

// oversizeStrictness and unlinkStrictness order each mode from the one
// that protects least.
var (
	oversizeStrictness = []string{guard.OversizeOff, guard.OversizeAudit, guard.OversizeReject}
	unlinkStrictness   = []string{guard.UnlinkOff, guard.UnlinkLarge, guard.UnlinkAlways}
)

// rank is mode's place in order ("" is dflt, as the guard reads it).
func rank(order []string, mode, dflt string) int {
	if mode == "" {
		mode = dflt
	}
	return slices.Index(order, mode)
}

// loweredStreamCaps describes stream_maxlen patterns removed or capped higher.
func loweredStreamCaps(old, next []guard.StreamMaxlen) []string {
	var out []string
	for _, o := range old {
		i := slices.IndexFunc(next, func(n guard.StreamMaxlen) bool { return n.Pattern == o.Pattern })
		switch {
		case i < 0:
			out = append(out, "guard.stream_maxlen removed: "+o.Pattern)
		case next[i].Maxlen > o.Maxlen:
			out = append(out, fmt.Sprintf("guard.stream_maxlen %s: %d -> %d", o.Pattern, o.Maxlen, next[i].Maxlen))
		}
	}
	return out
}

// missing lists the items of old that next lacks.
func missing(old, next []string) []string {
	var gone []string
	for _, s := range old {
		if !slices.Contains(next, s) {
			gone = append(gone, s)
		}
	}
	return gone
}

func missingNames(old, next map[string]string) []string {
	var gone []string
	for name := range old {
		if _, ok := next[name]; !ok {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	return gone
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
