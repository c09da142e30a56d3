package policy

import (
	"fmt"
	"strings"
	"testing"
)

var globCases = []struct {
	pattern, s string
	want       bool
}{
	{"*", "", false}, // Redis quirk: stars are only trimmed once the string is consumed
	{"*", "anything", true},
	{"", "", true},
	{"", "a", false},
	{"a", "", false},
	{"cache:*", "cache:1", true},
	{"cache:*", "cache:", true},
	{"cache:*", "cachex", false},
	{"a*b*c", "aXbYc", true},
	{"a*b*c", "aXbY", false},
	{"a**", "a", true},
	{"**a", "a", true},
	{"*a*", "bab", true},
	{"a?c", "abc", true},
	{"a?c", "ac", false},
	{"?", "", false},
	{"[abc]", "b", true},
	{"[abc]", "d", false},
	{"[^abc]", "d", true},
	{"[^abc]", "a", false},
	{"[a-c]x", "bx", true},
	{"[c-a]x", "bx", true},
	{"[a-c]", "d", false},
	{`[\]]`, "]", true},
	{`[a\-z]`, "-", true},
	{`[a\-z]`, "b", false},
	{"[abc", "a", true},
	{"[abc", "c", true},
	{"[", "a", false},
	{"[]", "a", false},
	{"x[]", "x", false},
	{`\*`, "*", true},
	{`\*`, "a", false},
	{`a\`, "a", false},
	{`a\`, `a\`, true},
	{`\`, `\`, true},
	{"user:[0-9]*", "user:12", true},
	{"user:[0-9]*", "user:x", false},
	{"[a-\xff]", "b", false}, // signed chars: the range is [-1, 'a']
	{"[a-\xff]", "\xfe", false},
	{"[\x80-\xff]", "\x90", true},
	{"*\xe9", "caf\xe9", true},
	{"a*", "a\x00b", true},
}

func TestMatch(t *testing.T) {
	for _, tc := range globCases {
		t.Run(fmt.Sprintf("%q matches %q: %v", tc.pattern, tc.s, tc.want), func(t *testing.T) {
			if got := Match(tc.pattern, tc.s); got != tc.want {
				t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.s, got)
			}
		})
	}
}

func TestMatchGivesUpOnDeeplyNestedStars(t *testing.T) {
	pattern := strings.Repeat("a*", 1100)
	s := strings.Repeat("a", 1100)
	if Match(pattern, s) {
		t.Error("a pattern nesting more than 1000 stars matched; Redis refuses it")
	}
	if !Match(strings.Repeat("a*", 900), s) {
		t.Error("900 nested stars did not match")
	}
}

func TestMatchIsFastOnPathologicalPatterns(t *testing.T) {
	// Without Redis's skipLongerMatches this takes exponential time.
	if Match(strings.Repeat("*a", 30)+"b", strings.Repeat("a", 60)) {
		t.Error("matched")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	key := []byte("user:12345678901234567890123456789012345678901234567890")
	if n := testing.AllocsPerRun(100, func() { match("user:[0-9]*", key) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestMatchAgreesWithRedis asks Redis, through ACL DRYRUN of a user whose
// only key pattern is the case's pattern, whether the key matches.
func TestMatchAgreesWithRedis(t *testing.T) {
	_, rdb := startOracle(t, nil)
	ctx := t.Context()
	for i, tc := range globCases {
		if tc.pattern == "" || tc.pattern == "*" || tc.s == "" || strings.ContainsAny(tc.pattern+tc.s, " \x00") {
			continue // not expressible as a key pattern and key
		}
		user := fmt.Sprintf("g%d", i)
		if err := rdb.Do(ctx, "ACL", "SETUSER", user, "reset", "on", "~"+tc.pattern, "+get").Err(); err != nil {
			t.Fatal(err)
		}
		reply, err := rdb.Do(ctx, "ACL", "DRYRUN", user, "GET", tc.s).Text()
		if err != nil {
			t.Fatal(err)
		}
		if redisMatch := reply == "OK"; redisMatch != Match(tc.pattern, tc.s) {
			t.Errorf("pattern %q, key %q: Redis says %v, Match says %v", tc.pattern, tc.s, redisMatch, !redisMatch)
		}
	}
}
