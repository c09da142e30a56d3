package policy

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseRules applies arbitrary rules; whatever is accepted must survive
// a round trip through Describe (ACL LIST) unchanged.
func FuzzParseRules(f *testing.F) {
	for _, u := range loadUsers(f) {
		f.Add(u.rules)
	}
	f.Add("on >p %R~r:* %W~w:* &c +@all -@dangerous +config|get +select|0 -select")
	f.Add("reset nopass resetpass allkeys resetkeys allchannels resetchannels allcommands nocommands")
	cmds := BuiltinCommands()
	f.Fuzz(func(t *testing.T, rules string) {
		u := newUser("u", cmds)
		if err := u.applyRules(cmds, rules); err != nil {
			if _, ok := err.(*RuleError); !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		described := u.Describe()
		again := newUser("u", cmds)
		if err := again.applyRules(cmds, described); err != nil {
			t.Fatalf("Describe() = %q does not parse: %v", described, err)
		}
		if got := again.Describe(); got != described {
			t.Fatalf("round trip changed the description:\n%q\n%q", described, got)
		}
		if !slices.Equal(u.allowed, again.allowed) || u.allCommands != again.allCommands {
			t.Fatalf("round trip of %q changed the allowed commands", rules)
		}
	})
}

// FuzzMatch checks the glob matcher never panics, treats string and []byte
// alike, and matches any string against its fully escaped form.
func FuzzMatch(f *testing.F) {
	for _, tc := range globCases {
		f.Add(tc.pattern, tc.s)
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 200 {
			return // the matcher is exponential in stars by design, as Redis's is
		}
		if Match(pattern, s) != match(pattern, []byte(s)) {
			t.Fatal("string and []byte disagree")
		}
		var escaped strings.Builder
		for i := range len(s) {
			escaped.WriteByte('\\')
			escaped.WriteByte(s[i])
		}
		if s != "" && !Match(escaped.String(), s) {
			t.Fatalf("%q does not match its escaped form %q", s, escaped.String())
		}
		if s != "" && !strings.ContainsAny(s, `*?[\`) && !Match(s, s) {
			t.Fatalf("%q does not match itself", s)
		}
	})
}
