package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Modes for Config.Mode.
const (
	ModeEnforce = "enforce" // denials are answered with Redis's NOPERM errors
	ModeAudit   = "audit"   // would-be denials are forwarded and reported (Decision.Audit)
)

// Config is the policy section of respguard's configuration. The zero value
// is the default: enforce mode, no users besides Redis's default user
// ("on nopass ~* &* +@all"), no preset, no renames.
type Config struct {
	// Mode is ModeEnforce (also when empty) or ModeAudit.
	Mode string `mapstructure:"mode"`

	// Users maps a user name to its ACL rules in Redis 7.0 syntax, applied
	// in order to a user that starts off, with no passwords, keys, channels
	// or commands (like a `user` line in a Redis ACL file). Configuring
	// "default" replaces the default user that unauthenticated clients get.
	// Rules are separated by white space, so passwords cannot contain any.
	Users map[string]string `mapstructure:"users"`

	// PasswordFiles maps a user name (which must be in Users) to a file whose
	// content, trimmed of surrounding white space, is one more password for
	// that user, so secrets need not be inline. New reads the files.
	PasswordFiles map[string]string `mapstructure:"password_files"`

	// DefaultRules names a preset of rules appended to every user's rules,
	// including the default user's. "" means none; PresetProduction blocks
	// the commands listed in ProductionRules.
	DefaultRules string `mapstructure:"default_rules"`

	// Rename is Redis's rename-command: a command name (any case) maps to
	// its new name, or to "" to disable the command. A renamed command is
	// only callable under its new name.
	Rename map[string]string `mapstructure:"rename"`

	// ScriptIdentity says how scripts (EVAL, EVALSHA, FCALL and their _RO
	// forms) of users whose rules restrict keys, channels or commands run,
	// since Redis judges each redis.call by the connection's Redis user:
	// ScriptsRefuse (also when empty) refuses them with a NOPERM error;
	// ScriptsMirror runs them as a Redis user respguard creates with the
	// same rules (Policy.Mirrors). Unrestricted users' scripts always run.
	ScriptIdentity string `mapstructure:"script_identity"`

	// ScriptUsers maps a proxy user (which must be in Users) to a Redis user
	// the operator created with the same rules, for upstreams where
	// respguard cannot run ACL SETUSER (managed Redis). With ScriptsMirror
	// that user's scripts run as this Redis user instead of a mirror
	// respguard creates; respguard does not check that its rules match.
	ScriptUsers map[string]string `mapstructure:"script_users"`

	// ScriptPasswordFiles maps a proxy user in ScriptUsers to a file whose
	// content, trimmed of surrounding white space, is the password of its
	// Redis user. New reads the files.
	ScriptPasswordFiles map[string]string `mapstructure:"script_password_files"`
}

// Validate checks c against the built-in command table without reading
// password files. Errors name the offending key, e.g.
// `policy.users.appuser: rule "+foo@": Unknown command or category name in ACL`.
func (c *Config) Validate() error {
	return c.validate(BuiltinCommands())
}

func (c *Config) validate(cmds *Commands) error {
	var errs []error
	if c.Mode != "" && c.Mode != ModeEnforce && c.Mode != ModeAudit {
		errs = append(errs, fmt.Errorf("policy.mode: unknown mode %q (want %q or %q)", c.Mode, ModeEnforce, ModeAudit))
	}
	if c.ScriptIdentity != "" && c.ScriptIdentity != ScriptsRefuse && c.ScriptIdentity != ScriptsMirror {
		errs = append(errs, fmt.Errorf("policy.script_identity: unknown value %q (want %q or %q)", c.ScriptIdentity, ScriptsRefuse, ScriptsMirror))
	}
	if _, ok := presets[c.DefaultRules]; !ok {
		errs = append(errs, fmt.Errorf("policy.default_rules: unknown preset %q (want \"\" or %q)", c.DefaultRules, PresetProduction))
	}
	for _, name := range sortedKeys(c.Users) {
		if err := validateUser(name, c.Users[name], cmds); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range sortedKeys(c.PasswordFiles) {
		if _, ok := c.Users[name]; !ok {
			errs = append(errs, fmt.Errorf("policy.password_files.%s: no such user in policy.users", name))
		} else if c.PasswordFiles[name] == "" {
			errs = append(errs, fmt.Errorf("policy.password_files.%s: empty path", name))
		}
	}
	errs = append(errs, c.validateScriptUsers()...)
	errs = append(errs, validateRename(c.Rename, cmds)...)
	return errors.Join(errs...)
}

func validateUser(name, rules string, cmds *Commands) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("policy.users: bad user name %q", name)
	}
	if err := newUser(name, cmds).applyRules(cmds, rules); err != nil {
		return fmt.Errorf("policy.users.%s: %w", name, err)
	}
	return nil
}

func (c *Config) validateScriptUsers() []error {
	var errs []error
	for _, name := range sortedKeys(c.ScriptUsers) {
		switch _, ok := c.Users[name]; {
		case !ok:
			errs = append(errs, fmt.Errorf("policy.script_users.%s: no such user in policy.users", name))
		case c.ScriptUsers[name] == "" || strings.ContainsAny(c.ScriptUsers[name], " \t\r\n"):
			errs = append(errs, fmt.Errorf("policy.script_users.%s: bad Redis user name %q", name, c.ScriptUsers[name]))
		case c.ScriptPasswordFiles[name] == "":
			errs = append(errs, fmt.Errorf("policy.script_users.%s: no policy.script_password_files.%s", name, name))
		}
	}
	for _, name := range sortedKeys(c.ScriptPasswordFiles) {
		if _, ok := c.ScriptUsers[name]; !ok {
			errs = append(errs, fmt.Errorf("policy.script_password_files.%s: no such user in policy.script_users", name))
		}
	}
	return errs
}

func validateRename(rename map[string]string, cmds *Commands) []error {
	var errs []error
	targets := map[string]string{}
	for _, from := range sortedKeys(rename) {
		to := strings.ToLower(rename[from])
		switch {
		case !cmds.IsKnown([]byte(from)):
			errs = append(errs, fmt.Errorf("policy.rename.%s: unknown command", from))
		case strings.ContainsAny(to, " \t\r\n|"):
			errs = append(errs, fmt.Errorf("policy.rename.%s: bad new name %q", from, rename[from]))
		case to != "" && cmds.IsKnown([]byte(to)) && !strings.EqualFold(to, from):
			errs = append(errs, fmt.Errorf("policy.rename.%s: new name %q is already a command", from, rename[from]))
		case to != "" && targets[to] != "":
			errs = append(errs, fmt.Errorf("policy.rename.%s: new name %q is also used by policy.rename.%s", from, rename[from], targets[to]))
		}
		if to != "" {
			targets[to] = from
		}
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
