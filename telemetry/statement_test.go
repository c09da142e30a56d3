package telemetry

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func args(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

func TestFormatStatement(t *testing.T) {
	tests := []struct {
		name string
		mode StatementMode
		args [][]byte
		keys []int
		want string
	}{
		{"keys mode keeps keys and hides values", StatementKeys, args("set", "user:1", "alice"), []int{1}, "SET user:1 ?"},
		{"the empty mode means keys", "", args("mset", "a", "1", "b", "2"), []int{3, 1}, "MSET a ? b ?"},
		{"full mode keeps every argument", StatementFull, args("set", "user:1", "alice"), []int{1}, "SET user:1 alice"},
		{"none mode keeps only the command", StatementNone, args("set", "user:1", "alice"), []int{1}, "SET"},
		{"arguments with spaces are quoted", StatementFull, args("set", "k", "a b"), []int{1}, `SET k "a b"`},
		{"binary keys are quoted as valid UTF-8", StatementKeys, args("get", "\xff\x00k"), []int{1}, `GET "\xff\x00k"`},
		{"out-of-range key indexes are ignored", StatementKeys, args("get", "k"), []int{5, -1}, "GET ?"},
		{"no args give nothing", StatementKeys, nil, nil, ""},
		{"a long argument is cut", StatementFull, args("set", "k", strings.Repeat("v", 200)), nil, "SET k " + strings.Repeat("v", 128) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(FormatStatement(nil, tt.mode, tt.args, tt.keys))
			if got != tt.want {
				t.Fatalf("FormatStatement = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatStatementBoundsAHugeCommand(t *testing.T) {
	a := args("mset")
	for range 10000 {
		a = append(a, []byte("key"), []byte("value"))
	}
	got := FormatStatement(nil, StatementFull, a, nil)
	if len(got) > maxStatementLen+maxStatementArgLen+16 || !strings.HasSuffix(string(got), " ...") || !utf8.Valid(got) {
		t.Fatalf("statement of %d bytes, suffix %q", len(got), got[len(got)-8:])
	}
}

func TestFormatStatementAppendsWithoutAllocating(t *testing.T) {
	a, keys := args("set", "user:1", "alice"), []int{1}
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf = FormatStatement(buf[:0], StatementKeys, a, keys)
	})
	if allocs != 0 {
		t.Fatalf("FormatStatement allocated %v times", allocs)
	}
}
