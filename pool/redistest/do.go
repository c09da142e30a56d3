package redistest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	tidwall "github.com/tidwall/resp"
)

// ReplyError is an error reply from Redis, e.g. "MOVED 3999 127.0.0.1:6381".
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return e.Msg }

// DoValue sends one command to addr on a fresh connection (RESP2, no AUTH)
// and returns its reply. An error reply is returned as a *ReplyError.
func DoValue(addr string, args ...string) (tidwall.Value, error) {
	return DoAuthValue(addr, "", args...)
}

// DoAuthValue is DoValue after AUTH password, when password is not empty.
func DoAuthValue(addr, password string, args ...string) (tidwall.Value, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return tidwall.Value{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	cmds := [][]string{args}
	if password != "" {
		cmds = [][]string{{"AUTH", password}, args}
	}
	w := tidwall.NewWriter(conn)
	for _, cmd := range cmds {
		vals := make([]tidwall.Value, len(cmd))
		for i, a := range cmd {
			vals[i] = tidwall.StringValue(a)
		}
		if err := w.WriteArray(vals); err != nil {
			return tidwall.Value{}, fmt.Errorf("write to %s: %w", addr, err)
		}
	}
	rd := tidwall.NewReader(conn)
	var v tidwall.Value
	for range cmds {
		if v, _, err = rd.ReadValue(); err != nil {
			return tidwall.Value{}, fmt.Errorf("read from %s: %w", addr, err)
		}
		if v.Type() == tidwall.Error {
			return v, &ReplyError{Msg: v.String()}
		}
	}
	return v, nil
}

// Do is DoValue with the reply as text: strings as they are, integers in
// decimal, a nil reply as "", arrays flattened one element per line.
func Do(addr string, args ...string) (string, error) {
	v, err := DoValue(addr, args...)
	if err != nil {
		return "", err
	}
	return text(v), nil
}

// IsReplyError reports whether err is an error reply starting with prefix
// (e.g. "MOVED").
func IsReplyError(err error, prefix string) bool {
	var re *ReplyError
	return errors.As(err, &re) && strings.HasPrefix(re.Msg, prefix)
}

func text(v tidwall.Value) string {
	if v.Type() != tidwall.Array {
		return v.String()
	}
	parts := make([]string, 0, len(v.Array()))
	for _, e := range v.Array() {
		parts = append(parts, text(e))
	}
	return strings.Join(parts, "\n")
}

// CommandCalls returns how many times the server at addr has run the
// command name (as INFO commandstats names it: lower case, "client|list"
// for a subcommand), 0 if never.
func CommandCalls(addr, name string) (int, error) {
	info, err := Do(addr, "INFO", "commandstats")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			var n int
			if _, err := fmt.Sscanf(rest, "%d", &n); err != nil {
				return 0, fmt.Errorf("commandstats line %q: %w", line, err)
			}
			return n, nil
		}
	}
	return 0, nil
}
