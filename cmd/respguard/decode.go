package main

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// keyError is a problem with one configuration key, named as in the file
// (dotted, lower-case).
type keyError struct {
	key string
	msg string
}

func (e *keyError) Error() string { return e.key + ": " + e.msg }

// decodeConfig decodes v's settings into cfg with respguard's rules:
// sizes take units, a bare non-zero number is not a duration, a value of
// the wrong type is refused rather than converted (see scalarHook), lists
// written as one string split on commas and whitespace (see listHook), and
// unknown keys are errors. Each error names its key.
func decodeConfig(v *viper.Viper, cfg *Config) error {
	var md mapstructure.Metadata
	err := v.Unmarshal(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(sizeHook, durationHook, listHook, scalarHook)
		dc.WeaklyTypedInput = false // scalarHook converts what may be converted; viper turns this on
		dc.Metadata = &md
		dc.ErrorUnused = false // reported below, by full key name
	})
	if err != nil {
		return describeDecodeError(err)
	}
	return unknownKeys(md.Unused)
}

// unknownKeys reports keys the file or environment set that respguard does not have.
func unknownKeys(unused []string) error {
	sort.Strings(unused)
	var errs []error
	for _, key := range unused {
		errs = append(errs, &keyError{key, "unknown key (see the configuration table in README.md)"})
	}
	return errors.Join(errs...)
}

// describeDecodeError rewrites mapstructure's errors as "key: problem"
// lines without its Go type names and strconv texts.
func describeDecodeError(err error) error {
	var out []error
	walkDecodeErrors(err, "", &out)
	if len(out) == 0 {
		return err
	}
	return errors.Join(out...)
}

func walkDecodeErrors(err error, name string, out *[]error) {
	switch e := err.(type) {
	case *keyError:
		*out = append(*out, e)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			walkDecodeErrors(inner, name, out)
		}
	case *listItemError:
		*out = append(*out, &keyError{fmt.Sprintf("%s[%d]", name, e.index), e.msg})
	case *mapstructure.DecodeError:
		walkDecodeErrors(e.Unwrap(), dottedName(e.Name()), out)
	case *mapstructure.ParseError:
		*out = append(*out, &keyError{name, fmt.Sprintf("want %s, got %q", describeKind(e.Expected.Type()), fmt.Sprint(e.Value))})
	case *mapstructure.UnconvertibleTypeError:
		*out = append(*out, &keyError{name, fmt.Sprintf("want %s, got %v", describeKind(e.Expected.Type()), e.Value)})
	default:
		if u := errors.Unwrap(err); u != nil && name == "" {
			walkDecodeErrors(u, name, out)
			return
		}
		*out = append(*out, &keyError{name, err.Error()})
	}
}

// describeKind says in words what a key of type t takes.
func describeKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map:
		return "a mapping of names to values"
	case reflect.Pointer:
		return describeKind(t.Elem())
	}
	return t.String()
}

// dottedName writes mapstructure's map entries ("policy.users[app]") as
// the file does ("policy.users.app"); list indices stay ("[0]").
func dottedName(name string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(name, '[')
		end := strings.IndexByte(name, ']')
		if open < 0 || end < open {
			return b.String() + name
		}
		entry := name[open+1 : end]
		if _, err := strconv.Atoi(entry); err == nil {
			b.WriteString(name[:end+1])
		} else {
			b.WriteString(name[:open] + "." + entry)
		}
		name = name[end+1:]
	}
}
