package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func userFrom(t *testing.T, rules string) *User {
	t.Helper()
	u := newUser("u", BuiltinCommands())
	if err := u.applyRules(BuiltinCommands(), rules); err != nil {
		t.Fatal(err)
	}
	return u
}

// ruleCases state, for one rule form each, what a user built from the
// rules may do: each allowed/denied entry is a command line.
var ruleCases = []struct {
	name, rules     string
	allowed, denied []string
}{
	{"a new user may run nothing", "on", nil, []string{"PING", "GET k"}},
	{"+command allows that command with keys it matches", "on ~* +get", []string{"GET k"}, []string{"SET k v"}},
	{"-command takes a command away again", "on ~* +get +set -get", []string{"SET k v"}, []string{"GET k"}},
	{"+@category allows the category", "on ~* +@string", []string{"GET k", "APPEND k v"}, []string{"HGET k f"}},
	{"-@category removes the category", "on ~* +@all -@write", []string{"GET k"}, []string{"SET k v", "DEL k"}},
	{"allcommands is +@all", "on ~* allcommands", []string{"FLUSHALL", "NOSUCHCOMMAND"}, nil},
	{"nocommands is -@all", "on ~* +@all nocommands", nil, []string{"GET k"}},
	{"+container allows every subcommand", "on +config", []string{"CONFIG GET x", "CONFIG SET a b"}, nil},
	{"+command|subcommand allows only that subcommand", "on +config|get", []string{"config get x"}, []string{"CONFIG SET a b"}},
	{"-command|subcommand removes one subcommand", "on +config -config|set", []string{"CONFIG GET x"}, []string{"CONFIG SET a b"}},
	{"+command|firstarg allows one first argument", "on +select|0", []string{"SELECT 0"}, []string{"SELECT 1"}},
	{"a later +command clears first arguments", "on +select|0 -select", nil, []string{"SELECT 0"}},
	{"~pattern limits keys", "on ~app:* +@all", []string{"GET app:1", "MGET app:1 app:2"}, []string{"GET other", "MGET app:1 other"}},
	{"allkeys is ~*", "on allkeys +@all", []string{"GET anything"}, nil},
	{"resetkeys forgets patterns", "on ~* resetkeys ~a +@all", []string{"GET a"}, []string{"GET b"}},
	{"%R~ grants reads only", "on %R~r:* +@all", []string{"GET r:1", "EXISTS r:1"}, []string{"SET r:1 v"}},
	{"%W~ grants writes only", "on %W~w:* +@all", []string{"SET w:1 v", "LPUSH w:1 v"}, []string{"GET w:1", "SET w:1 v GET"}},
	{"%RW~ is ~", "on %RW~k +@all", []string{"GET k", "SET k v GET"}, nil},
	{"keys without read or write access need no permission", "on %W~w:* +@all", []string{"EXISTS w:1", "TYPE w:1"}, nil},
	{"&channel allows publishing to matching channels", "on resetchannels &news.* +@all", []string{"PUBLISH news.eu m"}, []string{"PUBLISH sports m"}},
	{"psubscribe needs the pattern listed literally", "on &news.* +@all", []string{"PSUBSCRIBE news.*"}, []string{"PSUBSCRIBE news.e*"}},
	{"allchannels is &*", "on allchannels +@all", []string{"SUBSCRIBE any", "PSUBSCRIBE *"}, nil},
	{"resetchannels forgets channels", "on &* resetchannels +@all", nil, []string{"PUBLISH x m"}},
	{"unsubscribe is never checked", "on +@all", []string{"UNSUBSCRIBE x", "PUNSUBSCRIBE x"}, nil},
	{"reset takes everything away", "on ~* &* +@all reset", nil, []string{"PING"}},
	{"auth and hello need no permission", "on", []string{"AUTH x", "HELLO 3"}, nil},
	{"unknown commands are denied unless +@all", "on ~* +@read", nil, []string{"NOSUCHCOMMAND"}},
	{"removing anything after +@all denies unknown commands", "on ~* +@all -get", nil, []string{"NOSUCHCOMMAND"}},
	{"rules are case-insensitive", "ON ~* +GET +@READ", []string{"GET k", "STRLEN k"}, nil},
}

func TestRuleForms(t *testing.T) {
	p, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			u := userFrom(t, tc.rules)
			for _, line := range tc.allowed {
				if d := p.Check(u, toBytes(splitArgs(line))); !d.Allowed {
					t.Errorf("%q denied: %s", line, d.Err)
				}
			}
			for _, line := range tc.denied {
				if d := p.Check(u, toBytes(splitArgs(line))); d.Allowed {
					t.Errorf("%q allowed", line)
				}
			}
		})
	}
}

func TestPasswordRules(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		noPass      bool
		hashes      []string
	}{
		{">password adds its sha256", "on >a >b >a", false, []string{sha("a"), sha("b")}},
		{"<password removes it", "on >a >b <a", false, []string{sha("b")}},
		{"#hash adds a hash", "on #" + sha("x"), false, []string{sha("x")}},
		{"!hash removes a hash", "on >x !" + sha("x"), false, nil},
		{"nopass forgets passwords", "on >a nopass", true, nil},
		{"a password after nopass clears nopass", "on nopass >a", false, []string{sha("a")}},
		{"resetpass forgets passwords and nopass", "on >a nopass resetpass", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := userFrom(t, tc.rules)
			if u.noPass != tc.noPass || strings.Join(u.passwords, ",") != strings.Join(tc.hashes, ",") {
				t.Errorf("nopass=%v passwords=%v, want %v %v", u.noPass, u.passwords, tc.noPass, tc.hashes)
			}
		})
	}
}

func TestBadRulesAreRejectedWithRedisMessages(t *testing.T) {
	for _, tc := range []struct{ rule, msg string }{
		{"+foo@", msgUnknownCommand},
		{"+@nosuchcategory", msgUnknownCommand},
		{"-nosuchcommand", msgUnknownCommand},
		{"-select|0", msgUnknownCommand},
		{"+config|nosuch", msgUnknownCommand},
		{"+select|", msgSyntax},
		{"bogus", msgSyntax},
		{"%X~k", msgSyntax},
		{"%RR~k", msgSyntax},
		{"#abc", msgBadHash},
		{"#" + strings.ToUpper(sha("x")), msgBadHash},
		{"<notset", msgNoSuchPassword},
		{"(~* +get)", msgSelectors},
	} {
		t.Run(tc.rule+" is rejected", func(t *testing.T) {
			err := newUser("u", BuiltinCommands()).applyRule(BuiltinCommands(), tc.rule)
			var re *RuleError
			if !errors.As(err, &re) || re.Msg != tc.msg || re.Rule != tc.rule {
				t.Errorf("got %v, want %q", err, tc.msg)
			}
		})
	}
	t.Run("a key pattern after allkeys is rejected", func(t *testing.T) {
		err := newUser("u", BuiltinCommands()).applyRules(BuiltinCommands(), "allkeys ~a")
		if err == nil || !strings.Contains(err.Error(), "resetkeys") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a channel after allchannels is rejected", func(t *testing.T) {
		err := newUser("u", BuiltinCommands()).applyRules(BuiltinCommands(), "allchannels &a")
		if err == nil || !strings.Contains(err.Error(), "resetchannels") {
			t.Errorf("got %v", err)
		}
	})
}

// TestRuleErrorsAgreeWithRedis sends each rule to ACL SETUSER and checks
// that Redis accepts exactly the rules respguard accepts, with the same
// explanation.
func TestRuleErrorsAgreeWithRedis(t *testing.T) {
	_, rdb := startOracle(t, nil)
	rules := []string{"on", "off", "+get", "+foo@", "+@nosuch", "-select|0", "+select|0", "+select|", "+config|nosuch",
		"+config|get", "-config|get", "bogus", "%X~k", "%RR~k", "%R~k", "%W~k", "%RW~k", "%~k", "#abc", "<notset",
		"#" + sha("x"), "!" + sha("x"), "nopass", "resetpass", "allkeys", "~*", "&*", "allchannels", "reset", "%R",
		"sanitize-payload", "skip-sanitize-payload", "+@all", "-@all", "allcommands", "nocommands", "~a", "&c", "+acl|nosuch|x",
		"+GET", "+@READ", "+get|x", "-GET|x", ">", "<", "#", "+", "-", "~", "&", "%"}
	for _, rule := range rules {
		redisErr := rdb.Do(t.Context(), "ACL", "SETUSER", "r", "reset", rule).Err()
		err := newUser("r", BuiltinCommands()).applyRule(BuiltinCommands(), rule)
		var want, got string
		if redisErr != nil {
			want = redisErr.Error()
		}
		if err != nil {
			var re *RuleError
			errors.As(err, &re)
			got = "ERR Error in ACL SETUSER modifier '" + rule + "': " + re.Msg
		}
		if got != want {
			t.Errorf("rule %q: respguard %q, redis %q", rule, got, want)
		}
	}
}
