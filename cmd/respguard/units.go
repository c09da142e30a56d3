package main

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// sizeKeys are the keys holding a number of bytes: they take plain bytes
// or a number with a unit (see parseSize).
var sizeKeys = []string{
	"client.max_bulk_len",
	"client.max_inline_size",
	"client.query_buffer_limit",
	"client.output_buffer_limit",
	"client.output_buffer_soft_limit",
	"guard.unlink.min_bytes",
}

// sizeHook converts the size keys of the whole settings tree to bytes
// before decoding (it runs on the root, where key names are known).
func sizeHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	root, ok := data.(map[string]any)
	if to != reflect.TypeFor[Config]() || !ok {
		return data, nil
	}
	var errs []error
	for _, key := range sizeKeys {
		parent, name, val, found := lookupNested(root, key)
		if !found {
			continue
		}
		n, err := toSize(val)
		if err != nil {
			errs = append(errs, &keyError{key, err.Error()})
			continue
		}
		parent[name] = n
	}
	return root, errors.Join(errs...)
}

// lookupNested finds a dotted key in a settings tree.
func lookupNested(root map[string]any, key string) (parent map[string]any, name string, val any, found bool) {
	parts := strings.Split(key, ".")
	parent = root
	for _, p := range parts[:len(parts)-1] {
		if parent, found = parent[p].(map[string]any); !found {
			return nil, "", nil, false
		}
	}
	name = parts[len(parts)-1]
	val, found = parent[name]
	return parent, name, val, found
}

// toSize turns a YAML or environment value into a number of bytes.
func toSize(val any) (int64, error) {
	switch x := val.(type) {
	case string:
		return parseSize(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt64/2 {
			return 0, fmt.Errorf("want a whole number of bytes or a size such as 512mb, got %v", x)
		}
		return int64(x), nil
	}
	rv := reflect.ValueOf(val)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if rv.Uint() > math.MaxInt64 {
			return 0, fmt.Errorf("%d bytes is too large", rv.Uint())
		}
		return int64(rv.Uint()), nil
	}
	return 0, fmt.Errorf("want a number of bytes or a size such as 512mb, got %v", val)
}

// sizeUnits are the multipliers parseSize accepts, lower-case. As in
// redis.conf, k/m/g are powers of 1000 and kb/mb/gb powers of 1024; the
// IEC kib/mib/gib are powers of 1024 too.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1000, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1000 * 1000, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1000 * 1000 * 1000, "gb": 1 << 30, "gib": 1 << 30,
}

// parseSize parses "1048576", "512mb", "64KB", "1gb", "2GiB" (the unit is
// case-insensitive) into bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(t)
	}
	unit, known := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if i == 0 || !known || err != nil {
		return 0, fmt.Errorf("want bytes or a number with a unit (b, k, kb, kib, m, mb, mib, g, gb, gib; kb = 1024 as in redis.conf), got %q", s)
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * unit, nil
}

// durationHook decodes durations from Go duration strings ("300s",
// "1m30s") and refuses a bare non-zero number, which would otherwise be
// taken as nanoseconds. 0 stays allowed: for many keys it means "off".
func durationHook(from reflect.Type, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() || from == to {
		return data, nil
	}
	if s, ok := data.(string); ok {
		s = strings.TrimSpace(s)
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			d, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("want a duration such as 300ms, 30s, 5m or 1h, got %q", s)
			}
			return d, nil
		}
		data = s
	}
	if n, err := strconv.ParseFloat(fmt.Sprint(data), 64); err == nil {
		if n == 0 {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("a bare number is not a duration: write %vs for %v seconds (units: ms, s, m, h)", data, data)
	}
	return nil, fmt.Errorf("want a duration such as 300ms, 30s, 5m or 1h, got %v", data)
}
