package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func mustNew(t testing.TB, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "svc.pass")
	if err := os.WriteFile(file, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, Config{
		Users: map[string]string{
			"app":    "on >S3cret ~* +@all",
			"hashed": "on #" + sha("h4sh") + " +@all",
			"open":   "on nopass +@all",
			"off":    "off >S3cret +@all",
			"svc":    "on +@all",
		},
		PasswordFiles: map[string]string{"svc": file},
	})
	for _, tc := range []struct {
		name, user, password string
		ok                   bool
	}{
		{"the right password logs in", "app", "S3cret", true},
		{"a wrong password is refused", "app", "s3cret", false},
		{"an empty password is refused", "app", "", false},
		{"a #hash user logs in with the password behind the hash", "hashed", "h4sh", true},
		{"a nopass user logs in with any password", "open", "whatever", true},
		{"a user that is off is refused even with the right password", "off", "S3cret", false},
		{"an unknown user is refused", "nobody", "S3cret", false},
		{"a password file's trimmed content is a password", "svc", "from-file", true},
		{"the unconfigured default user has nopass", "default", "x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := p.Authenticate(tc.user, tc.password)
			if tc.ok && (err != nil || u == nil || u.Name() != tc.user) {
				t.Fatalf("got %v, %v", u, err)
			}
			if !tc.ok && (u != nil || !errors.Is(err, ErrWrongPass)) {
				t.Fatalf("got %v, %v", u, err)
			}
		})
	}
	if ErrWrongPass.Error() != "WRONGPASS invalid username-password pair or user is disabled." {
		t.Errorf("WRONGPASS text: %q", ErrWrongPass)
	}
}

func TestAuthRequired(t *testing.T) {
	for _, tc := range []struct {
		name  string
		users map[string]string
		want  bool
	}{
		{"no users configured: the default user has nopass", nil, false},
		{"a default user with a password requires AUTH", map[string]string{"default": "on >x +@all"}, true},
		{"a default user that is off requires AUTH", map[string]string{"default": "off nopass +@all"}, true},
		{"a nopass default user does not", map[string]string{"default": "on nopass +@read"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustNew(t, Config{Users: tc.users}).AuthRequired(); got != tc.want {
				t.Errorf("AuthRequired = %v", got)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	p := mustNew(t, Config{Rename: map[string]string{"FLUSHALL": "", "config": "CONFIG-b83f", "get": "get"}})
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"an untouched command resolves to itself", "SET", "SET", true},
		{"a disabled command is unknown", "flushall", "", false},
		{"a renamed command is unknown under its old name", "CONFIG", "", false},
		{"a renamed command is callable under its new name, in any case", "config-B83F", "config", true},
		{"a command renamed to itself stays callable", "GET", "get", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real, ok := p.Resolve([]byte(tc.in))
			if ok != tc.ok || (ok && string(real) != tc.want) {
				t.Errorf("Resolve(%q) = %q, %v", tc.in, real, ok)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { p.Resolve([]byte("Config-b83f")) }); n != 0 {
		t.Errorf("Resolve allocates %v times", n)
	}
}

func TestAuditMode(t *testing.T) {
	users := map[string]string{"app": "on >x ~app:* resetchannels +get +publish"}
	enforce := mustNew(t, Config{Users: users})
	audit := mustNew(t, Config{Users: users, Mode: ModeAudit})
	for _, tc := range []struct {
		name, line, reason, key, err string
	}{
		{"a forbidden command is reported with the command", "FLUSHALL", ReasonCommand, "", "NOPERM this user has no permissions to run the 'flushall' command"},
		{"a forbidden key is reported with the key", "GET other:1", ReasonKey, "other:1", keyDeniedText},
		{"a forbidden channel is reported with the channel", "PUBLISH ch m", ReasonChannel, "ch", channelDeniedText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := toBytes(splitArgs(tc.line))
			e := enforce.Check(enforce.User("app"), args)
			a := audit.Check(audit.User("app"), args)
			if e.Allowed || e.Audit || e.Forward() {
				t.Errorf("enforce: %+v", e)
			}
			if a.Allowed || !a.Audit || !a.Forward() {
				t.Errorf("audit: %+v", a)
			}
			for _, d := range []Decision{e, a} {
				if d.Reason != tc.reason || d.Key != tc.key || d.Err != tc.err {
					t.Errorf("got %+v", d)
				}
			}
		})
	}
	t.Run("an allowed command is allowed in audit mode, not audited", func(t *testing.T) {
		if d := audit.Check(audit.User("app"), toBytes([]string{"GET", "app:1"})); !d.Allowed || d.Audit {
			t.Errorf("%+v", d)
		}
	})
}

func TestCheckEdgeCases(t *testing.T) {
	p := mustNew(t, Config{Users: map[string]string{"app": "on >x ~* +@read", "all": "on >x ~* +@all"}})
	app, all := p.User("app"), p.User("all")
	for _, tc := range []struct {
		name string
		u    *User
		line string
		want Decision
	}{
		{"an unknown command is denied to a restricted user", app, "NOSUCH x", Decision{Err: "NOPERM this user has no permissions to run the 'nosuch' command", Reason: ReasonCommand}},
		{"an unknown command is allowed to a +@all user", all, "NOSUCH x", Decision{Allowed: true}},
		{"an unknown subcommand is denied to a restricted user", app, "OBJECT NOSUCH k", Decision{Err: "NOPERM this user has no permissions to run the 'object|nosuch' command", Reason: ReasonCommand}},
		{"a wrong argument count gets Redis's arity error", all, "GET", Decision{Err: "ERR wrong number of arguments for 'get' command", Reason: ReasonArity}},
		{"a denied EXEC gets Redis's EXECABORT wrapping", app, "EXEC", Decision{Err: "EXECABORT Transaction discarded because of: NOPERM this user has no permissions to run the 'exec' command", Reason: ReasonCommand}},
		{"no user means not authenticated", nil, "GET k", Decision{Err: NoAuthText, Reason: ReasonAuth}},
		{"no user may still AUTH", nil, "AUTH pw", Decision{Allowed: true}},
		{"no arguments at all is denied", app, "", Decision{Err: "ERR empty command", Reason: ReasonCommand}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Check(tc.u, toBytes(splitArgs(tc.line))); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCheckDoesNotAllocateWhenAllowed(t *testing.T) {
	p := mustNew(t, Config{Users: map[string]string{"app": "on >x ~cache:* %R~ro:* &news.* +@all -flushall"}, ScriptIdentity: ScriptsMirror})
	u := p.User("app")
	long := strings.Repeat("x", 100)
	for _, line := range []string{
		"GET cache:" + long, "get ro:1", "MSET cache:1 a cache:2 b cache:3 c cache:4 d cache:5 e cache:6 f cache:7 g cache:8 h cache:9 i cache:10 j",
		"EVAL s 2 cache:1 cache:2 a", "XREAD COUNT 1 STREAMS ro:1 ro:2 0 0", "SORT cache:1 STORE cache:2",
		"PUBLISH news.eu m", "CONFIG GET maxmemory", "SET cache:1 v GET",
	} {
		args := toBytes(splitArgs(line))
		if d := p.Check(u, args); !d.Allowed {
			t.Fatalf("%q denied: %s", line, d.Err)
		}
		if n := testing.AllocsPerRun(100, func() { p.Check(u, args) }); n != 0 {
			t.Errorf("%q: %v allocations", line, n)
		}
	}
}

func TestKeys(t *testing.T) {
	cmds := BuiltinCommands()
	for _, tc := range []struct {
		name, line string
		want       []int
	}{
		{"GET has its key first", "GET k", []int{1}},
		{"MSET has every other argument", "MSET a 1 b 2", []int{1, 3}},
		{"EVAL counts numkeys", "EVAL s 2 a b c", []int{3, 4}},
		{"EVAL with a bad numkeys has none", "EVAL s x a", nil},
		{"XREAD has the first half after STREAMS", "XREAD COUNT 2 STREAMS a b 0 0", []int{4, 5}},
		{"ZUNIONSTORE has the destination and numkeys sources", "ZUNIONSTORE d 2 a b WEIGHTS 1 2", []int{1, 3, 4}},
		{"MIGRATE has its key", "MIGRATE h 1 k 0 10", []int{3}},
		{"MIGRATE KEYS has the keys after KEYS", "MIGRATE h 1 \"\" 0 10 COPY KEYS a b", []int{8, 9}},
		{"SORT STORE has the store key", "SORT k LIMIT 0 1 STORE d", []int{1, 6}},
		{"GEORADIUS has STORE and STOREDIST keys", "GEORADIUS k 1 2 3 km STORE a STOREDIST b", []int{1, 7, 9}},
		{"a subcommand's key is found", "OBJECT ENCODING k", []int{2}},
		{"an unknown command has none", "NOSUCH a", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cmds.Keys(toBytes(splitArgs(tc.line)), nil)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Keys = %v, want %v", got, tc.want)
			}
		})
	}
	dst := make([]int, 0, 8)
	args := toBytes(splitArgs("MSET a 1 b 2"))
	if n := testing.AllocsPerRun(100, func() { cmds.Keys(args, dst[:0]) }); n != 0 {
		t.Errorf("Keys allocates %v times", n)
	}
	if !cmds.IsKnown([]byte("gEt")) || cmds.IsKnown([]byte("nosuch")) {
		t.Error("IsKnown")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"the zero value is valid", Config{}, ""},
		{"a bad rule names the user and the rule", Config{Users: map[string]string{"appuser": "on +foo@"}},
			`policy.users.appuser: rule "+foo@": Unknown command or category name in ACL`},
		{"an unknown mode is named", Config{Mode: "permissive"}, `policy.mode: unknown mode "permissive"`},
		{"an unknown preset is named", Config{DefaultRules: "strict"}, `policy.default_rules: unknown preset "strict"`},
		{"a password file for an unknown user is named", Config{PasswordFiles: map[string]string{"bob": "/x"}}, "policy.password_files.bob: no such user"},
		{"renaming an unknown command is named", Config{Rename: map[string]string{"NOSUCH": ""}}, "policy.rename.NOSUCH: unknown command"},
		{"renaming onto another command is named", Config{Rename: map[string]string{"CONFIG": "get"}}, `policy.rename.CONFIG: new name "get" is already a command`},
		{"two renames to one name are named", Config{Rename: map[string]string{"CONFIG": "x", "DEBUG": "X"}}, `policy.rename.DEBUG: new name "X" is also used by policy.rename.CONFIG`},
		{"several errors are all reported", Config{Mode: "x", DefaultRules: "y"}, "policy.default_rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("New reports an unreadable password file", func(t *testing.T) {
		_, err := New(Config{Users: map[string]string{"u": "on"}, PasswordFiles: map[string]string{"u": "/nonexistent/p"}}, nil)
		if err == nil || !strings.Contains(err.Error(), "policy.password_files.u") {
			t.Errorf("got %v", err)
		}
	})
}

func TestProductionPreset(t *testing.T) {
	p := mustNew(t, Config{DefaultRules: PresetProduction, Users: map[string]string{"ops": "on >x ~* &* +@all"}})
	for _, u := range []*User{p.DefaultUser(), p.User("ops")} {
		for _, r := range ProductionRules {
			name := strings.TrimPrefix(r.Rule, "-")
			args := toBytes(strings.Split(name, "|"))
			for len(args) < 4 {
				args = append(args, []byte("x"))
			}
			if d := p.Check(u, args); d.Allowed || d.Reason == ReasonCommand && !strings.Contains(d.Err, name) {
				t.Errorf("%s may run %s: %+v", u.Name(), name, d)
			}
		}
		if d := p.Check(u, toBytes([]string{"GET", "k"})); !d.Allowed {
			t.Errorf("%s may not GET: %s", u.Name(), d.Err)
		}
	}
}

func TestACLHelpers(t *testing.T) {
	p := mustNew(t, Config{Users: map[string]string{"app": "on >pw ~cache:* %R~ro:* &news +get -@all +@read -keys +select|0"}})
	if got := p.ACLUsers(); !slices.Equal(got, []string{"app", "default"}) {
		t.Errorf("ACLUsers = %v", got)
	}
	want := []string{
		"user app on #" + sha("pw") + " ~cache:* %R~ro:* resetchannels &news -@all +@read -keys +select|0",
		"user default on nopass ~* &* +@all",
	}
	if got := p.ACLList(); !slices.Equal(got, want) {
		t.Errorf("ACLList =\n%q\nwant\n%q", got, want)
	}
	if got, _ := p.ACLCat(""); len(got) != 21 || got[0] != "keyspace" {
		t.Errorf("ACLCat() = %v", got)
	}
	if got, _ := p.ACLCat("pubsub"); !slices.Contains(got, "publish") || !slices.Contains(got, "pubsub|channels") {
		t.Errorf("ACLCat(pubsub) = %v", got)
	}
	if _, errLine := p.ACLCat("nosuch"); errLine != "ERR Unknown category 'nosuch'" {
		t.Errorf("ACLCat(nosuch) error = %q", errLine)
	}
	for sub, want := range map[string]ACLAction{"whoami": ACLLocal, "LIST": ACLLocal, "DryRun": ACLLocal, "setuser": ACLRefuse,
		"DELUSER": ACLRefuse, "load": ACLRefuse, "save": ACLRefuse, "genpass": ACLForward, "help": ACLForward} {
		if got := ACLSubcommand([]byte(sub)); got != want {
			t.Errorf("ACLSubcommand(%s) = %v, want %v", sub, got, want)
		}
	}
	if got := ACLRefusalText([]byte("setuser")); !strings.HasPrefix(got, "ERR ACL SETUSER ") {
		t.Errorf("refusal %q", got)
	}
}

// TestParseCommandReplyAcceptsRESP2AndRESP3 reads COMMAND from a real
// server in both protocols and compares the tables with the built-in one.
func TestParseCommandReplyAcceptsRESP2AndRESP3(t *testing.T) {
	srv, _ := startOracle(t, nil)
	want := normalized(BuiltinCommands().List())
	for _, proto := range []int{2, 3} {
		t.Run("a RESP"+string(rune('0'+proto))+" reply gives the built-in table", func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: proto})
			defer rdb.Close()
			cmds, err := ParseCommandReply(mustSlice(t, rdb.Do(t.Context(), "COMMAND")))
			if err != nil {
				t.Fatal(err)
			}
			got := normalized(cmds.List())
			if len(got) != len(want) {
				t.Fatalf("%d commands, want %d", len(got), len(want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("%s:\n got %+v\nwant %+v", got[i].Name, got[i], want[i])
				}
			}
		})
	}
	t.Run("a malformed reply is an error", func(t *testing.T) {
		if _, err := ParseCommandReply([]any{"get"}); err == nil {
			t.Error("no error")
		}
	})
}

// normalized sorts flags and subcommands, whose order Redis does not fix.
func normalized(list []CommandInfo) []CommandInfo {
	out := slices.Clone(list)
	for i := range out {
		out[i].Flags = slices.Sorted(slices.Values(out[i].Flags))
		out[i].Subcommands = normalized(out[i].Subcommands)
	}
	slices.SortFunc(out, func(a, b CommandInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
