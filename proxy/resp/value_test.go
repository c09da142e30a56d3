package resp

import (
	"bytes"
	"testing"
)

func TestValueLen(t *testing.T) {
	whole := []string{
		"+OK\r\n", "-ERR x\r\n", ":12\r\n", "_\r\n", "#t\r\n", ",1.5\r\n", "(123\r\n",
		"$3\r\nabc\r\n", "$-1\r\n", "$0\r\n\r\n", "=8\r\ntxt:abcd\r\n", "!3\r\nerr\r\n",
		"*0\r\n", "*-1\r\n", "*2\r\n$1\r\na\r\n:1\r\n", "*2\r\n*1\r\n+x\r\n$-1\r\n",
		"%1\r\n+k\r\n+v\r\n", "~2\r\n:1\r\n:2\r\n", ">2\r\n+message\r\n+x\r\n",
		"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
	}
	for _, v := range whole {
		n, ok := ValueLen([]byte(v + "+NEXT\r\n"))
		if !ok || n != len(v) {
			t.Errorf("ValueLen(%q) = %d, %v; want %d", v, n, ok, len(v))
		}
		for cut := 0; cut < len(v); cut++ {
			if _, ok := ValueLen([]byte(v[:cut])); ok {
				t.Errorf("ValueLen(%q) accepted a value cut at %d", v, cut)
			}
		}
	}
	for _, bad := range []string{"$3\r\nabcd\r\n", "?\r\n", "*1\r\n?x\r\n", "+OK\n"} {
		if _, ok := ValueLen([]byte(bad)); ok {
			t.Errorf("ValueLen(%q) accepted a malformed value", bad)
		}
	}
}

func TestElements(t *testing.T) {
	elems, ok := Elements([]byte("*3\r\n$1\r\na\r\n$-1\r\n*1\r\n:1\r\n"))
	want := []string{"$1\r\na\r\n", "$-1\r\n", "*1\r\n:1\r\n"}
	if !ok || len(elems) != len(want) {
		t.Fatalf("Elements = %q, %v", elems, ok)
	}
	for i := range want {
		if !bytes.Equal(elems[i], []byte(want[i])) {
			t.Errorf("element %d = %q, want %q", i, elems[i], want[i])
		}
	}
	if _, ok := Elements([]byte("-ERR no\r\n")); ok {
		t.Error("Elements accepted an error reply")
	}
}

// FuzzValueLen checks that ValueLen never panics and never claims more
// bytes than it was given.
func FuzzValueLen(f *testing.F) {
	for _, s := range []string{"*2\r\n$1\r\na\r\n:1\r\n", "%1\r\n+k\r\n+v\r\n", "|1\r\n+a\r\n:1\r\n+v\r\n", "$-1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, ok := ValueLen(b); ok && (n <= 0 || n > len(b)) {
			t.Fatalf("ValueLen(%q) = %d of %d bytes", b, n, len(b))
		}
	})
}
