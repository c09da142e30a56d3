package policy

import (
	"slices"
	"strings"
	"testing"
)

func TestRespguardIsJudgedAsAnAdminCommand(t *testing.T) {
	p, err := New(Config{DefaultRules: PresetProduction, Users: map[string]string{
		"default":  "on nopass ~* &* +@all",
		"app":      "on nopass ~* &* +@all -@admin",
		"reader":   "on nopass ~* +@read +@write +@connection",
		"ops":      "on nopass +@admin",
		"watchdog": "on nopass +respguard|clients",
	}}, BuiltinCommands())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, cmd string
		want      string // "" allowed
	}{
		{"default", "respguard reload", ""},
		{"ops", "respguard config", ""},
		{"ops", "respguard help", "NOPERM this user has no permissions to run the 'respguard|help' command"},
		{"app", "respguard clients", "NOPERM this user has no permissions to run the 'respguard|clients' command"},
		{"app", "respguard help", ""},
		{"reader", "respguard slowlog", "NOPERM this user has no permissions to run the 'respguard|slowlog' command"},
		{"reader", "respguard help", "NOPERM this user has no permissions to run the 'respguard|help' command"}, // @slow only, as CLIENT HELP
		{"watchdog", "respguard clients", ""},
		{"watchdog", "respguard reload", "NOPERM this user has no permissions to run the 'respguard|reload' command"},
		{"default", "respguard", "ERR wrong number of arguments for 'respguard' command"},
		{"default", "respguard pools x", "ERR wrong number of arguments for 'respguard|pools' command"},
		{"app", "respguard Nope", "ERR unknown subcommand 'Nope'. Try RESPGUARD HELP."},
		{"default", "respguard nope", "ERR unknown subcommand 'nope'. Try RESPGUARD HELP."},
	} {
		t.Run(tc.user+" running "+tc.cmd, func(t *testing.T) {
			var args [][]byte
			for _, a := range strings.Fields(tc.cmd) {
				args = append(args, []byte(a))
			}
			if d := p.Check(p.User(tc.user), args); d.Err != tc.want || d.Allowed != (tc.want == "") {
				t.Errorf("got %+v, want %q", d, tc.want)
			}
		})
	}
}

func TestEveryTableHasRespguardOnce(t *testing.T) {
	admin, _ := BuiltinCommands().CategoryCommands("admin")
	for _, sub := range []string{"respguard|clients", "respguard|reload", "respguard|config", "respguard|bigkeys"} {
		if !slices.Contains(admin, sub) {
			t.Errorf("@admin lacks %s", sub)
		}
	}
	if slices.Contains(admin, "respguard|help") {
		t.Error("respguard|help is @admin")
	}
	again, err := NewCommands(BuiltinCommands().List()) // a table that has it already
	if err != nil {
		t.Fatalf("a table listing respguard: %v", err)
	}
	if again.Len() != BuiltinCommands().Len() {
		t.Errorf("%d commands, want %d", again.Len(), BuiltinCommands().Len())
	}
}
