package main

import (
	"fmt"
	"maps"
	"strings"
)

// namedMapTargets are the Config fields namedMaps decode into.
func (c *Config) namedMapTargets() map[string]*map[string]string {
	return map[string]*map[string]string{
		"policy.users":                 &c.Policy.Users,
		"policy.password_files":        &c.Policy.PasswordFiles,
		"policy.rename":                &c.Policy.Rename,
		"policy.script_users":          &c.Policy.ScriptUsers,
		"policy.script_password_files": &c.Policy.ScriptPasswordFiles,
	}
}

// applyNamedMaps sets cfg's named maps from the YAML document doc, then
// from RESPGUARD_<KEY>_<name> variables (which win), with every name kept
// as written: viper lower-cases keys, and Redis user names are
// case-sensitive.
func applyNamedMaps(cfg *Config, doc map[string]any, environ []string) error {
	fromEnv := namedMapsFromEnv(environ)
	for key, target := range cfg.namedMapTargets() {
		m, err := namedMapFromFile(doc, key)
		if err != nil {
			return err
		}
		maps.Copy(m, fromEnv[key])
		*target = m
	}
	return nil
}

// namedMapFromFile returns the entries of a named map in doc; section
// names match in any case, as viper matches them.
func namedMapFromFile(doc map[string]any, key string) (map[string]string, error) {
	out := map[string]string{}
	node := any(doc)
	for _, part := range strings.Split(key, ".") {
		m, err := stringKeyed(node)
		if err != nil || m == nil {
			return out, nil
		}
		node = nil
		for k, v := range m {
			if strings.EqualFold(k, part) {
				node = v
			}
		}
	}
	entries, err := stringKeyed(node)
	if err != nil {
		return nil, &keyError{key, err.Error()}
	}
	for name, v := range entries {
		switch v.(type) {
		case nil:
			out[name] = ""
		case string, bool, int, float64:
			out[name] = fmt.Sprint(v)
		default:
			return nil, &keyError{key + "." + name, fmt.Sprintf("want a string, got %v", v)}
		}
	}
	return out, nil
}

// stringKeyed returns a YAML mapping with its keys as strings (YAML makes
// a mapping with a numeric key, such as user 1001, a map[any]any).
func stringKeyed(node any) (map[string]any, error) {
	switch m := node.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return m, nil
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a mapping of names to values, got %v", node)
}

// namedMapsFromEnv returns the entries RESPGUARD_<KEY>_<name>=value
// variables give namedMaps, names as written after the prefix.
func namedMapsFromEnv(environ []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		key := namedMapEntry(name)
		if key == "" {
			continue
		}
		if out[key] == nil {
			out[key] = map[string]string{}
		}
		out[key][strings.TrimPrefix(name, envName(key)+"_")] = value
	}
	return out
}
