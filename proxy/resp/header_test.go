package resp

import "testing"

func TestReplyHeader(t *testing.T) {
	cases := map[string]struct {
		in   string
		kind byte
		n    int64
		next int
		ok   bool
	}{
		"an integer reply gives its value":         {":42\r\n", ':', 42, 5, true},
		"an array gives its length":                {"*3\r\n$1\r\na\r\n", '*', 3, 4, true},
		"a RESP3 map gives its pair count":         {"%2\r\n", '%', 2, 4, true},
		"a bulk gives its length and body offset":  {"$5\r\nhello\r\n", '$', 5, 4, true},
		"a null bulk gives -1":                     {"$-1\r\n", '$', -1, 5, true},
		"a simple string has no integer":           {"+OK\r\n", 0, 0, 0, false},
		"a line without its newline is incomplete": {":42", 0, 0, 0, false},
		"a non-numeric length is refused":          {"*x\r\n", 0, 0, 0, false},
		"an empty input is refused":                {"", 0, 0, 0, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kind, n, next, ok := ReplyHeader([]byte(tc.in))
			if kind != tc.kind || n != tc.n || next != tc.next || ok != tc.ok {
				t.Fatalf("ReplyHeader(%q) = %q %d %d %v", tc.in, kind, n, next, ok)
			}
		})
	}
}
