package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/respguard/respguard/proxy"
)

// errReloaderStopped answers a RESPGUARD RELOAD that comes while respguard
// is shutting down.
var errReloaderStopped = errors.New("respguard is shutting down")

// settings lists cfg's keys (dotted, as in the file; a named map's entries
// as "policy.users.<name>") with their values, sorted by key, secrets masked
// as --print-config masks them: what RESPGUARD CONFIG shows.
func settings(cfg Config) []proxy.Setting {
	flat := map[string]any{}
	flattenConfig(reflect.ValueOf(cfg), "", flat)
	var out []proxy.Setting
	for key, v := range flat {
		m, ok := v.(map[string]string)
		if !ok {
			out = append(out, proxy.Setting{Key: key, Value: settingValue(key, v)})
			continue
		}
		for name, val := range maskNamedMap(key, m) {
			out = append(out, proxy.Setting{Key: key + "." + name, Value: val})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// maskNamedMap returns a copy of the named map at key with its secrets
// masked: the passwords in policy.users, and the new names in
// policy.rename (a renamed command is hidden only while its new name is;
// an empty one, a command disabled, stays as it is).
func maskNamedMap(key string, m map[string]string) map[string]string {
	shown := maps.Clone(m)
	for name, val := range shown {
		switch {
		case key == "policy.users":
			shown[name] = maskPasswords(val)
		case key == "policy.rename" && val != "":
			shown[name] = "********"
		}
	}
	return shown
}

// settingValue formats one value, masking the secret keys.
func settingValue(key string, v any) string {
	if slices.Contains(secretKeys, key) && v != "" {
		return "********"
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer { // telemetry.traces.sample_ratio: nil means the default
		if rv.IsNil() {
			return ""
		}
		v = rv.Elem().Interface()
	}
	switch v := v.(type) {
	case time.Duration:
		return v.String()
	case []string:
		return strings.Join(v, ",")
	}
	return fmt.Sprint(v)
}

// settingsInForce is what RESPGUARD CONFIG shows: the configuration the
// reloader last put in force. Safe from any goroutine.
func (r *reloader) settingsInForce() []proxy.Setting {
	if c := r.inForce.Load(); c != nil {
		return settings(*c)
	}
	return nil
}

// requestReload runs a reload on the reloader's goroutine, as SIGHUP does,
// and returns why it was refused (nil: applied): RESPGUARD RELOAD.
func (r *reloader) requestReload(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case r.requests <- done:
	case <-r.stopped:
		return errReloaderStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
