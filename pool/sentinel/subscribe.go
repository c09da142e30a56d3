package sentinel

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/respguard/respguard/proxy/resp"
	tidwall "github.com/tidwall/resp"
)

// The subscription is kept alive with a PING every pingInterval; silence
// for 3 of them ends it. After a failure the next sentinel is tried after a
// backoff from subscribeBackoffMin, doubling to subscribeBackoffMax, reset
// when a subscription lasted a while.
const (
	pingInterval        = 5 * time.Second
	subscribeBackoffMin = 100 * time.Millisecond
	subscribeBackoffMax = 5 * time.Second
)

// switchChannel is where sentinels announce a new primary:
// "<master-name> <old-ip> <old-port> <new-ip> <new-port>".
const switchChannel = "+switch-master"

// subscribeLoop keeps a subscription to switchChannel on one of the
// sentinels, in turn, until ctx is done.
func (w *Watcher) subscribeLoop(ctx context.Context) {
	backoff := subscribeBackoffMin
	for i := 0; ; i++ {
		addr := w.cfg.Addresses[i%len(w.cfg.Addresses)]
		started := time.Now()
		err := w.subscribe(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("sentinel: subscription to +switch-master ended; trying the next sentinel", "sentinel", addr, "error", err)
		if time.Since(started) > 4*pingInterval {
			backoff = subscribeBackoffMin
		}
		if !pause(ctx, backoff, nil) {
			return
		}
		backoff = min(2*backoff, subscribeBackoffMax)
	}
}

// subscribe subscribes to switchChannel on the sentinel at addr and handles
// its messages until the connection fails or ctx is done. Once subscribed
// it asks for a re-check: a switch may have been missed meanwhile.
func (w *Watcher) subscribe(ctx context.Context, addr string) error {
	conn, err := w.dialSentinel(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	rd := tidwall.NewReader(conn)
	if err := w.startSubscription(conn, rd); err != nil {
		return fmt.Errorf("subscribe on sentinel %s: %w", addr, err)
	}
	w.Recheck()
	done := make(chan struct{})
	defer close(done)
	go keepAlive(conn, done) // from now on the only writer
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * pingInterval))
		v, _, err := rd.ReadValue()
		if err != nil {
			return fmt.Errorf("read from sentinel %s: %w", addr, err)
		}
		w.handle(v)
	}
}

// startSubscription authenticates when configured and subscribes, under
// the dial timeout, checking each reply.
func (w *Watcher) startSubscription(conn net.Conn, rd *tidwall.Reader) error {
	_ = conn.SetDeadline(time.Now().Add(w.cfg.DialTimeout))
	cmds := [][]string{{"SUBSCRIBE", switchChannel}}
	if auth := w.authCommand(); auth != nil {
		cmds = append([][]string{auth}, cmds...)
	}
	var out []byte
	for _, c := range cmds {
		out = resp.AppendCommandStrings(out, c...)
	}
	if _, err := conn.Write(out); err != nil {
		return err
	}
	for range cmds {
		v, _, err := rd.ReadValue()
		if err != nil {
			return err
		}
		if v.Type() == tidwall.Error {
			return fmt.Errorf("sentinel answered: %s", v.String())
		}
	}
	return conn.SetDeadline(time.Time{})
}

// authCommand is the AUTH for the sentinels, or nil without a password.
func (w *Watcher) authCommand() []string {
	switch {
	case w.cfg.Password == "":
		return nil
	case w.cfg.Username == "":
		return []string{"AUTH", w.cfg.Password}
	}
	return []string{"AUTH", w.cfg.Username, w.cfg.Password}
}

// handle reacts to one value read on the subscription: a switch message
// for our master triggers a re-check that tries its new address first.
// Everything else (PING replies) is ignored.
func (w *Watcher) handle(v tidwall.Value) {
	msg := v.Array()
	if len(msg) != 3 || msg[0].String() != "message" || msg[1].String() != switchChannel {
		return
	}
	f := strings.Fields(msg[2].String())
	if len(f) != 5 || f[0] != w.cfg.MasterName {
		return
	}
	w.log.Info("sentinel: switch announced", "master", f[0], "from", net.JoinHostPort(f[1], f[2]), "to", net.JoinHostPort(f[3], f[4]))
	w.switched(net.JoinHostPort(f[3], f[4]))
}

// keepAlive writes a PING every pingInterval until done is closed or a
// write fails (the reader then fails too).
func keepAlive(conn net.Conn, done <-chan struct{}) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	ping := resp.AppendCommandStrings(nil, "PING")
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		_ = conn.SetWriteDeadline(time.Now().Add(pingInterval))
		if _, err := conn.Write(ping); err != nil {
			return
		}
	}
}

// dialSentinel connects to the sentinel at addr, with TLS when configured.
func (w *Watcher) dialSentinel(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial sentinel %s: %w", addr, err)
	}
	tc := w.cfg.tlsFor(addr)
	if tc == nil {
		return conn, nil
	}
	tlsConn := tls.Client(conn, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake with sentinel %s: %w", addr, err)
	}
	return tlsConn, nil
}
