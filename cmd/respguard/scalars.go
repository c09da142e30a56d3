package main

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// scalarHook decodes a number, boolean or string key strictly. YAML gives
// numbers and booleans their own types, and those must match the key: a
// boolean or a fraction is never a count (viper's weak typing would make
// true 1 and 1.5 1), and a number too large for the key is called that
// rather than wrapping around. The environment gives strings: they are
// parsed as the key's type (counts in decimal only). A number where a
// string goes is written as the string (tls.min_version: 1.2).
// Durations are durationHook's.
func scalarHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to == reflect.TypeFor[time.Duration]() || data == nil {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return wholeNumber(data, to.Bits())
	case reflect.Float32, reflect.Float64:
		return number(data)
	case reflect.Bool:
		return boolean(data)
	case reflect.String:
		return text(data)
	}
	return data, nil
}

// wholeNumber checks data for a signed integer key of the given bits.
func wholeNumber(data any, bits int) (any, error) {
	lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
	switch rv := reflect.ValueOf(data); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return data, outOfRange(rv.Int() > hi, rv.Int() < lo, fmt.Sprint(data), lo, hi)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return data, outOfRange(rv.Uint() > uint64(hi), false, fmt.Sprint(data), lo, hi)
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if f != math.Trunc(f) {
			return nil, fmt.Errorf("want a whole number, got %v", f)
		}
		if err := outOfRange(f >= float64(hi), f < float64(lo), strconv.FormatFloat(f, 'g', -1, 64), lo, hi); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("want a whole number, got %v written as a decimal (drop the decimal point or exponent)", f)
	case reflect.String:
		s := strings.TrimSpace(rv.String())
		n, err := strconv.ParseInt(s, 10, bits)
		if errors.Is(err, strconv.ErrRange) {
			return nil, outOfRange(!strings.HasPrefix(s, "-"), strings.HasPrefix(s, "-"), s, lo, hi)
		}
		if err != nil {
			return nil, fmt.Errorf("want a whole number, got %q", rv.String())
		}
		return n, nil
	case reflect.Bool:
		return nil, fmt.Errorf("want a whole number, got %v", data)
	}
	return data, nil // lists and mappings: mapstructure names their type
}

// outOfRange describes a number that does not fit its key.
func outOfRange(tooLarge, tooSmall bool, n string, lo, hi int64) error {
	switch {
	case tooLarge:
		return fmt.Errorf("%s is too large (at most %d)", n, hi)
	case tooSmall:
		return fmt.Errorf("%s is too small (at least %d)", n, lo)
	}
	return nil
}

// number checks data for a floating-point key.
func number(data any) (any, error) {
	switch rv := reflect.ValueOf(data); rv.Kind() {
	case reflect.String:
		f, err := strconv.ParseFloat(strings.TrimSpace(rv.String()), 64)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %q", rv.String())
		}
		return f, nil
	case reflect.Bool:
		return nil, fmt.Errorf("want a number, got %v", data)
	}
	return data, nil
}

// boolean checks data for a true/false key.
func boolean(data any) (any, error) {
	switch rv := reflect.ValueOf(data); rv.Kind() {
	case reflect.Bool:
		return data, nil
	case reflect.String:
		b, err := strconv.ParseBool(strings.TrimSpace(rv.String()))
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %q", rv.String())
		}
		return b, nil
	case reflect.Slice, reflect.Map:
		return data, nil
	}
	return nil, fmt.Errorf("want true or false, got %v", data)
}

// text checks data for a string key.
func text(data any) (any, error) {
	switch rv := reflect.ValueOf(data); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64), nil
	case reflect.Bool:
		return nil, fmt.Errorf("want a string, got %v (quote it if it is one)", data)
	}
	return data, nil
}

// listItemError is an unusable item of a list key, at index.
type listItemError struct {
	index int
	msg   string
}

func (e *listItemError) Error() string { return fmt.Sprintf("[%d]: %s", e.index, e.msg) }

// listHook decodes a list: a YAML list, or, for a list of strings, one
// string (an environment variable,
// or a YAML string where the list goes), split on commas and whitespace:
// "a:1 b:2", "a:1,b:2" and "a:1, b:2" are the same two items. An item
// written in a YAML list is one value and may contain neither: "abc* def*"
// as one item is refused rather than guessed at (one pattern that matches
// nothing, or two).
func listHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Slice || data == nil {
		return data, nil
	}
	s, isString := data.(string)
	items := reflect.ValueOf(data)
	switch {
	case isString && to.Elem().Kind() == reflect.String:
		return splitList(s), nil
	case items.Kind() != reflect.Slice:
		return nil, fmt.Errorf("want a list, got %v", data)
	case to.Elem().Kind() != reflect.String:
		return data, nil
	}
	for i := range items.Len() {
		if s, ok := items.Index(i).Interface().(string); ok && strings.ContainsFunc(s, isListSeparator) {
			return nil, &listItemError{i, fmt.Sprintf("%q contains whitespace or a comma: write each value as its own list item", s)}
		}
	}
	return data, nil
}

// splitList splits a list written as one string.
func splitList(s string) []string {
	return strings.FieldsFunc(s, isListSeparator)
}

func isListSeparator(r rune) bool { return r == ',' || unicode.IsSpace(r) }
