package policy

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestScriptDecisions(t *testing.T) {
	users := map[string]string{
		"full": "on nopass ~* &* +@all", "keys": "on nopass ~cache:* &* +@all",
		"chans": "on nopass ~* &news.* +@all", "cmds": "on nopass ~* &* +@all -keys", "noscript": "on nopass ~cache:* +get",
	}
	eval := toBytes([]string{"EVAL", "return 1", "0"})
	for _, tt := range []struct {
		identity, rename string
		want             map[string]string // user -> "allowed", "mirror", "refused" or "noperm"
	}{
		{"", "", map[string]string{"full": "allowed", "keys": "refused", "chans": "refused", "cmds": "refused", "noscript": "noperm"}},
		{ScriptsMirror, "", map[string]string{"full": "allowed", "keys": "mirror", "chans": "mirror", "cmds": "mirror", "noscript": "noperm"}},
		{ScriptsMirror, "FLUSHALL", map[string]string{"full": "mirror", "keys": "mirror"}},
		{ScriptsRefuse, "FLUSHALL", map[string]string{"full": "refused"}},
	} {
		cfg := Config{Users: users, ScriptIdentity: tt.identity}
		if tt.rename != "" {
			cfg.Rename = map[string]string{tt.rename: ""}
		}
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range tt.want {
			d := p.Check(p.User(name), eval)
			got := "noperm"
			switch {
			case d.Allowed && d.Identity == MirrorName(name):
				got = "mirror"
			case d.Allowed && d.Identity == "":
				got = "allowed"
			case d.Reason == ReasonScript && strings.Contains(d.Err, "policy.script_identity: mirror"):
				got = "refused"
			}
			if got != want {
				t.Errorf("script_identity %q, rename %q: user %s: %s (%+v), want %s", tt.identity, tt.rename, name, got, d, want)
			}
		}
	}
}

func TestMirrorsCarryPresetAndRenames(t *testing.T) {
	p, err := New(Config{
		Users:          map[string]string{"app": "on >pw %R~ro:* ~cache:* &news.* +@read -keys", "full": "on nopass ~* &* +@all", "off": "off ~x +get"},
		DefaultRules:   PresetProduction,
		Rename:         map[string]string{"FLUSHALL": "", "SHUTDOWN": "stop"},
		ScriptIdentity: ScriptsMirror,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := p.Mirrors()
	if len(m) != 3 || m[0].Name != "respguard-mirror:app" || m[1].Name != "respguard-mirror:default" || m[2].Name != "respguard-mirror:full" {
		t.Fatalf("mirrors %+v: want app, default and full (the preset restricts them), not the disabled user", m)
	}
	app := strings.Join(m[0].Rules, " ")
	for _, want := range []string{"%R~ro:* ~cache:* &news.* +@read -keys", "-flushdb", "-config", "-flushall -shutdown"} {
		if !strings.Contains(app, want) {
			t.Errorf("app's mirror rules %q lack %q", app, want)
		}
	}
	if slices.Contains(m[0].Rules, ">pw") {
		t.Errorf("mirror rules carry the proxy password: %q", app)
	}
	if err := (&Config{ScriptIdentity: "sometimes"}).Validate(); err == nil || !strings.Contains(err.Error(), "policy.script_identity") {
		t.Errorf("Validate = %v", err)
	}
}

func TestScriptUsersMapToTheOperatorsUsers(t *testing.T) {
	pwFile := t.TempDir() + "/pw"
	if err := os.WriteFile(pwFile, []byte(" ops-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"App": "on >pw ~cache:* +@all", "other": "on >pw ~x +@all"}
	p, err := New(Config{
		Users: users, ScriptIdentity: ScriptsMirror,
		ScriptUsers: map[string]string{"App": "ops-app"}, ScriptPasswordFiles: map[string]string{"App": pwFile},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := p.Mirrors()
	if len(m) != 2 || m[0].Name != "ops-app" || m[0].Password != "ops-secret" || !m[0].OperatorManaged() || m[0].Rules != nil ||
		m[1].Name != MirrorName("other") || m[1].OperatorManaged() {
		t.Fatalf("mirrors = %+v", m)
	}
	if d := p.Check(p.User("App"), toBytes([]string{"EVAL", "return 1", "0"})); !d.Allowed || d.Identity != "ops-app" {
		t.Fatalf("Check = %+v", d)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Users: users, ScriptUsers: map[string]string{"nobody": "x"}, ScriptPasswordFiles: map[string]string{"nobody": pwFile}}, "policy.script_users.nobody: no such user"},
		{Config{Users: users, ScriptUsers: map[string]string{"App": "ops app"}, ScriptPasswordFiles: map[string]string{"App": pwFile}}, "bad Redis user name"},
		{Config{Users: users, ScriptUsers: map[string]string{"App": "ops-app"}}, "no policy.script_password_files.App"},
		{Config{Users: users, ScriptPasswordFiles: map[string]string{"App": pwFile}}, "policy.script_password_files.App: no such user in policy.script_users"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	_, err = New(Config{Users: users, ScriptUsers: map[string]string{"App": "ops-app"}, ScriptPasswordFiles: map[string]string{"App": pwFile + ".missing"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "policy.script_password_files.App") {
		t.Errorf("New with a missing password file = %v", err)
	}
}
