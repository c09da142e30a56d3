package pool

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/respguard/respguard/proxy/resp"
)

// DialRaw opens a connection of its own to the current upstream, set up as
// Dial sets one up (HELLO 2 with AUTH when configured, READONLY with
// cfg.ReadOnly) in db 0, and hands the socket over: no reader goroutine
// runs on it, and the pool neither tracks, counts nor closes it. It is for
// a caller that drives the protocol itself (a replication stream, which
// stops being RESP after SYNC). The caller owns the connection and MUST
// close it; no byte of Redis's follows the set-up replies until the caller
// sends a command.
func (p *Pool) DialRaw(ctx context.Context) (net.Conn, error) {
	cfg, _ := p.target()
	cfg = cfg.WithDefaults()
	conn, err := dialConn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(cfg.DialTimeout))
	cmds, replies := setupCommands(cfg, 0, 2)
	if err := setupRaw(conn, cmds, replies); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set up connection to %s: %w", cfg.Address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// setupRaw writes cmds and reads their n replies, returning the first error
// reply as a *RedisError. It reads no byte past the last reply: the reader
// is dropped afterwards, so anything it buffered would be lost.
func setupRaw(conn net.Conn, cmds []byte, n int) error {
	if _, err := conn.Write(cmds); err != nil {
		return err
	}
	rd := resp.NewReplyReader(conn)
	var firstErr error
	for range n {
		var c captureSink
		if err := rd.ReadReply(&c); err != nil {
			return err
		}
		if len(c.b) > 0 && c.b[0] == '-' && firstErr == nil {
			firstErr = &RedisError{Msg: string(c.b[1 : len(c.b)-2])}
		}
	}
	if rd.Buffered() > 0 {
		return fmt.Errorf("%d unexpected bytes after the set-up replies", rd.Buffered())
	}
	return firstErr
}
