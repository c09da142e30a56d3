package telemetry

import "testing"

func TestFullStatementsNeverCarryCredentials(t *testing.T) {
	cases := [][]string{
		{"AUTH", "app", "s3cret"},
		{"hello", "3", "AUTH", "app", "s3cret"},
		{"ACL", "SETUSER", "bob", ">s3cret"},
		{"CONFIG", "SET", "requirepass", "s3cret"},
		{"MIGRATE", "h", "1", "k", "0", "5000", "AUTH", "s3cret"},
	}
	for _, c := range cases {
		args := make([][]byte, len(c))
		for i, a := range c {
			args[i] = []byte(a)
		}
		got := string(FormatStatement(nil, StatementFull, args, nil))
		for _, a := range c {
			if a == "s3cret" && containsWord(got, a) {
				t.Errorf("%q leaked the password: %q", c, got)
			}
		}
	}
	if got := string(FormatStatement(nil, StatementFull, [][]byte{[]byte("SET"), []byte("k"), []byte("v")}, nil)); got != "SET k v" {
		t.Errorf("full SET = %q", got)
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return true
		}
	}
	return false
}
