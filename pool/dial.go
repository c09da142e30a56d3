package pool

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/respguard/respguard/proxy/resp"
)

// dialConn opens a TCP (or TLS) connection to the upstream within cfg.DialTimeout.
func dialConn(ctx context.Context, cfg Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Address, err)
	}
	if cfg.TLS != nil {
		tlsCfg := cfg.TLS
		if tlsCfg.ServerName == "" && !tlsCfg.InsecureSkipVerify {
			tlsCfg = tlsCfg.Clone() // verify against the host dialed
			tlsCfg.ServerName, _, _ = net.SplitHostPort(cfg.Address)
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", cfg.Address, err)
		}
		conn = tc
	}
	return conn, nil
}

// setupCommands returns the commands that bring a new connection to the
// wanted state: HELLO (with AUTH when configured), SELECT and READONLY, and
// how many replies they get.
func setupCommands(cfg Config, db, proto int) (cmds []byte, replies int) {
	var b []byte
	if cfg.Password != "" {
		user := cfg.Username
		if user == "" {
			user = "default"
		}
		b = resp.AppendCommandStrings(b, "HELLO", strconv.Itoa(proto), "AUTH", user, cfg.Password)
	} else {
		b = resp.AppendCommandStrings(b, "HELLO", strconv.Itoa(proto))
	}
	replies = 1
	if db != 0 {
		b = resp.AppendCommandStrings(b, "SELECT", strconv.Itoa(db))
		replies++
	}
	if cfg.ReadOnly {
		b = resp.AppendCommandStrings(b, "READONLY")
		replies++
	}
	return b, replies
}

// Dial opens a connection, authenticates, sets the protocol, selects db and
// (with cfg.ReadOnly) sends READONLY, all under cfg.DialTimeout, and returns
// it as a running Pipe. An error reply from Redis (e.g. WRONGPASS, DB index
// out of range) is returned as a *RedisError. In the same round trip it
// reads Redis's Limits (see Pipe.Limits); a refused CONFIG GET is no error.
func Dial(ctx context.Context, cfg Config, db, proto int) (*Pipe, error) {
	cfg = cfg.WithDefaults()
	conn, err := dialConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(cfg.DialTimeout))
	src, sink := socketIO(conn)
	pr := &progressReader{src: src}
	rd := resp.NewReplyReader(pr)
	cmds, replies := setupCommands(cfg, db, proto)
	limits, hello, err := setup(conn, rd, appendLimitCommands(cmds), replies)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("set up connection to %s: %w", cfg.Address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	p := newPipe(conn, sink, pr, rd, db, proto)
	p.limits = limits
	p.clientID = helloClientID(hello)
	return p, nil
}

// setup writes cmds, reads n set-up replies, returning the first (HELLO's)
// and the first error reply, then one CONFIG GET reply per limitParams.
func setup(conn net.Conn, rd *resp.ReplyReader, cmds []byte, n int) (limits Limits, hello []byte, err error) {
	if _, err := conn.Write(cmds); err != nil {
		return limits, nil, err
	}
	var firstErr error
	for i := 0; i < n+len(limitParams); i++ {
		var c captureSink
		if err := rd.ReadReply(&c); err != nil {
			return limits, nil, err
		}
		if i == 0 {
			hello = c.b
		}
		switch {
		case i >= n:
			limits.set(i-n, configValue(c.b))
		case len(c.b) > 0 && c.b[0] == '-' && firstErr == nil:
			firstErr = &RedisError{Msg: string(c.b[1 : len(c.b)-2])}
		}
	}
	return limits, hello, firstErr
}

// helloIDField is how HELLO's reply (an array in RESP2, a map in RESP3)
// announces the connection's client id: the key "id", then an integer.
var helloIDField = []byte("\r\n$2\r\nid\r\n:")

// helloClientID returns the client id in HELLO's reply, 0 if absent.
func helloClientID(reply []byte) int64 {
	i := bytes.Index(reply, helloIDField)
	if i < 0 {
		return 0
	}
	digits := reply[i+len(helloIDField):]
	if end := bytes.IndexByte(digits, '\r'); end >= 0 {
		if id, err := strconv.ParseInt(string(digits[:end]), 10, 64); err == nil {
			return id
		}
	}
	return 0
}

// configValue returns the value in a one-parameter CONFIG GET reply (a RESP2
// array or RESP3 map of name and value), or "" for anything else.
func configValue(reply []byte) string {
	crlf := []byte("\r\n")
	lines := bytes.Split(bytes.TrimSuffix(reply, crlf), crlf)
	if len(lines) != 5 || (string(lines[0]) != "*2" && string(lines[0]) != "%1") {
		return ""
	}
	return string(lines[4])
}

// RedisError is an error reply from Redis met while setting up a connection.
type RedisError struct{ Msg string }

func (e *RedisError) Error() string { return e.Msg }

// captureSink keeps a whole (small) reply.
type captureSink struct{ b []byte }

func (c *captureSink) WriteReply(p []byte, last bool) { c.b = append(c.b, p...) }
