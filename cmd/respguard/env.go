package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// envPrefix starts every environment variable respguard reads.
const envPrefix = "RESPGUARD_"

// configEnv is RESPGUARD_CONFIG, the --config flag's variable.
const configEnv = envPrefix + "CONFIG"

// namedMaps are the keys whose entries are named by the operator (user
// names, command names). Their names keep the case they are written in,
// in the file and in RESPGUARD_<KEY>_<name> variables.
var namedMaps = []string{"policy.users", "policy.password_files", "policy.rename", "policy.script_users", "policy.script_password_files"}

// envName is the environment variable of a key: RESPGUARD_ and the key
// upper-cased with "." as "_" (upstream.address: RESPGUARD_UPSTREAM_ADDRESS).
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// checkEnv sorts the RESPGUARD_* variables of environ ("NAME=value") that
// set no key. A variable under a configuration section
// (RESPGUARD_UPSTREAM_ADRESS) is an error: it is a mistyped key, and
// ignoring it would run with a setting the operator did not intend. Any
// other one is only a warning: respguard's own scripts use the prefix for
// their variables (RESPGUARD_BIN, RESPGUARD_IMAGE_MODE), and processes they
// start inherit them.
func checkEnv(environ []string, keys []string) (warnings []string, err error) {
	known := map[string]bool{configEnv: true}
	sections := map[string]bool{}
	for _, key := range keys {
		known[envName(key)] = true
		sections[strings.SplitN(strings.TrimPrefix(envName(key), envPrefix), "_", 2)[0]] = true
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || known[name] || namedMapEntry(name) != "" {
			continue
		}
		section := strings.SplitN(strings.TrimPrefix(name, envPrefix), "_", 2)[0]
		if sections[section] {
			errs = append(errs, fmt.Errorf("%s: no such configuration key (variables are RESPGUARD_ and the key upper-cased, \".\" as \"_\": RESPGUARD_UPSTREAM_ADDRESS)", name))
			continue
		}
		warnings = append(warnings, name)
	}
	sort.Strings(warnings)
	return warnings, errors.Join(errs...)
}

// namedMapEntry returns the map key of namedMaps a variable such as
// RESPGUARD_POLICY_USERS_AppUser sets an entry of ("" if none).
func namedMapEntry(envVar string) string {
	for _, key := range namedMaps {
		if name, ok := strings.CutPrefix(envVar, envName(key)+"_"); ok && name != "" {
			return key
		}
	}
	return ""
}
