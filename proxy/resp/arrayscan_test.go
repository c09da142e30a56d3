package resp

import (
	"fmt"
	"strings"
	"testing"
)

func TestArrayScannerFindsEachElementWhateverTheChunks(t *testing.T) {
	big := strings.Repeat("v", 200)
	for _, tc := range []struct {
		name, reply string
		want        string // "index:kind" of each element, space-separated
	}{
		{"an EXEC array of simple replies", "*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:1\r\n", "0:+ 1:- 2::"},
		{"bulks, nulls and a long bulk with CRLF inside",
			"*4\r\n$3\r\na\nb\r\n$-1\r\n$200\r\n" + big + "\r\n+OK\r\n", "0:$ 1:$ 2:$ 3:+"},
		{"nested aggregates and RESP3 types",
			"*5\r\n*2\r\n$1\r\nx\r\n*1\r\n:1\r\n%1\r\n+k\r\n~2\r\n,1.5\r\n#t\r\n_\r\n|1\r\n+a\r\n+b\r\n+OK\r\n+OK\r\n", "0:* 1:% 2:_ 3:| 4:+"},
		{"an empty array has no elements", "*0\r\n", ""},
		{"a null array has none", "*-1\r\n", ""},
		{"a RESP3 null has none", "_\r\n", ""},
		{"EXECABORT has none", "-EXECABORT Transaction discarded because of previous errors.\r\n", ""},
	} {
		for _, size := range []int{1, 2, 3, 7, len(tc.reply)} {
			t.Run(fmt.Sprintf("%s, in chunks of %d", tc.name, size), func(t *testing.T) {
				var s ArrayScanner
				var got []string
				for p := tc.reply; len(p) > 0; {
					n := min(size, len(p))
					s.Scan([]byte(p[:n]), func(i int, kind byte) { got = append(got, fmt.Sprintf("%d:%c", i, kind)) })
					p = p[n:]
				}
				if strings.Join(got, " ") != tc.want {
					t.Fatalf("elements %q, want %q", strings.Join(got, " "), tc.want)
				}
			})
		}
	}
}

func TestArrayScannerStopsAtTheEndOfTheReply(t *testing.T) {
	var s ArrayScanner
	n := 0
	s.Scan([]byte("*1\r\n+OK\r\n+NEXT\r\n"), func(int, byte) { n++ })
	if n != 1 {
		t.Fatalf("%d elements reported, want 1", n)
	}
}
