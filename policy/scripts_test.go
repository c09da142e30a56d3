package policy

import (
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
