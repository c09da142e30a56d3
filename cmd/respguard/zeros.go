package main

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"time"
)

// zeroMeaning lists the keys with a non-zero default for which 0 is a
// setting of its own, as README's table says.
var zeroMeaning = map[string]string{
	"security.auth_rate_limit":      "off",
	"telemetry.traces.sample_ratio": "only commands over the slow threshold are traced",
}

// zeroHints say what to write instead of a refused 0, where there is more
// to say than "a positive value".
var zeroHints = map[string]string{
	"guard.max_elements":              "to let big reads through, set guard.oversize: off",
	"guard.unlink.min_elements":       "to send every DEL as UNLINK, set guard.unlink.mode: always",
	"guard.unlink.min_bytes":          "to send every DEL as UNLINK, set guard.unlink.mode: always",
	"guard.size_cache_ttl":            "a negative duration turns the cache off",
	"client.park_after":               "a negative duration turns parking off",
	"telemetry.slowlog.threshold":     "a negative duration turns the slow log off",
	"telemetry.traces.slow_threshold": "a negative duration turns this rule off",
	"telemetry.scrape_interval":       "a negative duration turns scraping off",
}

// refuseZeroDefaults refuses 0 for every key whose default is not 0 and
// for which 0 means nothing of its own (see zeroMeaning). The packages
// read a zero field as "the default" (a Config's zero value is the
// default configuration), so a 0 written in the file or the environment
// would otherwise silently become 10000 or 60s. The loader gives every key
// its default explicitly, so a zero here was written.
func refuseZeroDefaults(cfg Config) error {
	flat := map[string]any{}
	flattenConfig(reflect.ValueOf(cfg), "", flat)
	var errs []error
	for key, def := range defaults() {
		if _, meaningful := zeroMeaning[key]; meaningful || !isNumber(def) || reflect.ValueOf(def).IsZero() {
			continue
		}
		if v, ok := flat[key]; ok && reflect.ValueOf(v).IsZero() {
			errs = append(errs, &keyError{key, zeroRefusal(key, def)})
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

func zeroRefusal(key string, def any) string {
	msg := fmt.Sprintf("0 is not a setting of this key: write a positive %s (the default is %v)", kindOf(key, def), def)
	if hint := zeroHints[key]; hint != "" {
		msg += "; " + hint
	}
	return msg
}

func kindOf(key string, def any) string {
	switch {
	case reflect.TypeOf(def) == reflect.TypeFor[time.Duration]():
		return "duration"
	case slices.Contains(sizeKeys, key):
		return "size"
	}
	return "number"
}

// isNumber reports whether v is a number or a duration.
func isNumber(v any) bool {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}
