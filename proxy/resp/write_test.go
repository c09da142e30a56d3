package resp

import "testing"

func TestOneLineReplies(t *testing.T) {
	cases := []struct{ name, got, want string }{
		{"an error's CR and LF become spaces", string(AppendError(nil, "ERR x\r\n+OK\r\n")), "-ERR x  +OK  \r\n"},
		{"a lone LF or CR becomes a space", string(AppendError(nil, "ERR a\nb\rc")), "-ERR a b c\r\n"},
		{"a status's CR and LF become spaces", string(AppendSimple(nil, "OK\r\n:1")), "+OK  :1\r\n"},
		{"text without line breaks is kept", string(AppendError([]byte("+OK\r\n"), "WRONGTYPE x")), "+OK\r\n-WRONGTYPE x\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Fatalf("got %q, want %q", c.got, c.want)
			}
		})
	}
}
