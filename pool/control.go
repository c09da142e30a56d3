package pool

import (
	"context"
	"fmt"
	"net"
	"time"

	tidwall "github.com/tidwall/resp"
)

// ServerInfo is what respguard learns about the upstream at start.
type ServerInfo struct {
	Version   string // redis_version, reported to clients in HELLO
	Mode      string // standalone | cluster | sentinel
	Role      string // master | replica
	Databases int    // number of logical databases (16 when CONFIG is not allowed)
	Limits    Limits // Redis's client limits; zero fields: unknown
}

// Control runs request/response commands on a short-lived connection of its
// own (probes, INFO scrapes, COMMAND). These are rare, small replies, so it
// uses github.com/tidwall/resp's value reader rather than the streaming one.
type Control struct {
	cfg Config
}

// NewControl returns a Control for the upstream in cfg.
func NewControl(cfg Config) *Control { return &Control{cfg: cfg.WithDefaults()} }

// Do sends each command and returns their replies in order; error replies
// are values, not Go errors. The connection is closed afterwards.
func (c *Control) Do(ctx context.Context, cmds ...[]string) ([]tidwall.Value, error) {
	conn, err := dialConn(ctx, c.cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(c.cfg.DialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	return c.do(conn, cmds)
}

func (c *Control) do(conn net.Conn, cmds [][]string) ([]tidwall.Value, error) {
	all := append([][]string{c.helloCommand()}, cmds...)
	var out []byte
	for _, cmd := range all {
		args := make([]any, len(cmd)-1)
		for i, a := range cmd[1:] {
			args[i] = a
		}
		b, err := tidwall.MultiBulkValue(cmd[0], args...).MarshalRESP()
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	if _, err := conn.Write(out); err != nil {
		return nil, fmt.Errorf("write to %s: %w", c.cfg.Address, err)
	}
	rd := tidwall.NewReader(conn)
	vals := make([]tidwall.Value, 0, len(all))
	for range all {
		v, _, err := rd.ReadValue()
		if err != nil {
			return nil, fmt.Errorf("read from %s: %w", c.cfg.Address, err)
		}
		vals = append(vals, v)
	}
	if vals[0].Type() == tidwall.Error {
		return nil, &RedisError{Msg: vals[0].String()}
	}
	return vals, nil
}

func (c *Control) helloCommand() []string {
	if c.cfg.Password == "" {
		return []string{"HELLO", "2"}
	}
	user := c.cfg.Username
	if user == "" {
		user = "default"
	}
	return []string{"HELLO", "2", "AUTH", user, c.cfg.Password}
}

// Probe connects, authenticates and reads the server's identity; it doubles
// as the readiness check.
func (c *Control) Probe(ctx context.Context) (ServerInfo, error) {
	cmds := make([][]string, len(limitParams))
	for i, p := range limitParams {
		cmds[i] = []string{"CONFIG", "GET", p}
	}
	vals, err := c.Do(ctx, cmds...)
	if err != nil {
		return ServerInfo{}, err
	}
	info := ServerInfo{Version: "7.0.0", Mode: "standalone", Role: "master", Databases: 16}
	hello := vals[0].Array()
	for i := 0; i+1 < len(hello); i += 2 {
		switch hello[i].String() {
		case "version":
			info.Version = hello[i+1].String()
		case "mode":
			info.Mode = hello[i+1].String()
		case "role":
			info.Role = hello[i+1].String()
		}
	}
	for i := range limitParams {
		if cfg := vals[1+i].Array(); len(cfg) == 2 {
			info.Limits.set(i, cfg[1].String())
		}
	}
	if info.Limits.Databases > 0 {
		info.Databases = info.Limits.Databases
	}
	return info, nil
}

// Info returns the upstream's INFO text for the given sections.
func (c *Control) Info(ctx context.Context, sections ...string) (string, error) {
	vals, err := c.Do(ctx, append([]string{"INFO"}, sections...))
	if err != nil {
		return "", err
	}
	if vals[1].Type() == tidwall.Error {
		return "", &RedisError{Msg: vals[1].String()}
	}
	return vals[1].String(), nil
}

// ToAny converts a tidwall value into plain Go values: string, int64, nil,
// []any, or error for error replies.
func ToAny(v tidwall.Value) any {
	switch v.Type() {
	case tidwall.Array:
		if v.IsNull() {
			return nil
		}
		arr := v.Array()
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = ToAny(e)
		}
		return out
	case tidwall.Integer:
		return int64(v.Integer())
	case tidwall.Error:
		return &RedisError{Msg: v.String()}
	default:
		if v.IsNull() {
			return nil
		}
		return v.String()
	}
}

// Commands returns the upstream's COMMAND reply as plain Go values, for
// policy.ParseCommandReply.
func (c *Control) Commands(ctx context.Context) ([]any, error) {
	vals, err := c.Do(ctx, []string{"COMMAND"})
	if err != nil {
		return nil, err
	}
	if vals[1].Type() == tidwall.Error {
		return nil, &RedisError{Msg: vals[1].String()}
	}
	list, _ := ToAny(vals[1]).([]any)
	return list, nil
}
