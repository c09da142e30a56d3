package proxy

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/pool/redistest"
)

// startReplicationProxy starts a Redis that begins a replica's sync at once
// and a respguard in front of it under pol (nil: Redis's default user).
func startReplicationProxy(t *testing.T, pol *policy.Policy) *testProxy {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not installed")
	}
	rs := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	return startProxyWith(t, rs, nil, Options{Policy: pol})
}

// connectedReplicas reads INFO replication's connected_slaves from Redis itself.
func connectedReplicas(t *testing.T, tp *testProxy) string {
	t.Helper()
	info := tp.direct(t).Info(ctxT(t), "replication").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
			return v
		}
	}
	return ""
}

func TestSyncCarriedRaw(t *testing.T) {
	tp := startReplicationProxy(t, nil)
	ctx, direct := ctxT(t), tp.direct(t)
	for _, k := range []string{"before:1", "before:2", "before:3"} {
		direct.Set(ctx, k, "v", 0)
	}
	_, port, _ := strings.Cut(tp.Addr, ":")

	t.Run("redis-cli --rdb writes a file redis-check-rdb accepts, holding the keys written before", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "dump.rdb")
		out, err := exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "-p", port, "--rdb", file).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli --rdb: %v\n%s", err, out)
		}
		check, err := exec.CommandContext(ctx, "redis-check-rdb", file).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-check-rdb: %v\n%s", err, check)
		}
		if !strings.Contains(string(check), "3 keys read") || !strings.Contains(string(check), "RDB looks OK") {
			t.Fatalf("redis-check-rdb:\n%s", check)
		}
	})

	t.Run("redis-cli --replica shows a command written to Redis after the sync", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cmd := exec.CommandContext(cctx, "redis-cli", "-h", "127.0.0.1", "-p", port, "--replica")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		lines := bufio.NewScanner(stdout)
		readUntil := func(what string) {
			t.Helper()
			for lines.Scan() {
				if strings.Contains(lines.Text(), what) {
					return
				}
			}
			t.Fatalf("redis-cli --replica ended before printing %q: %v", what, lines.Err())
		}
		readUntil("SYNC done")
		direct.Set(ctx, "after:sync", "streamed", 0)
		readUntil(`"after:sync"`)
	})

	t.Run("the client shows as a replica (flag S); closing it ends its connection in Redis", func(t *testing.T) {
		c := tp.raw(t)
		c.send("PING\r\nSYNC\r\n")
		if v := c.reply(); v != "PONG" {
			t.Fatalf("PING before SYNC: %v", v)
		}
		for { // newlines keep the link alive until the payload's header
			if line := c.line(); strings.HasPrefix(line, "$") {
				break
			}
		}
		observer := tp.raw(t)
		observer.send("CLIENT LIST TYPE replica\r\n")
		list, _ := observer.reply().(string)
		if _, f := clientFields(list); f["flags"] != "S" || f["cmd"] != "sync" {
			t.Fatalf("CLIENT LIST TYPE replica: %q", list)
		}
		if n := connectedReplicas(t, tp); n != "1" {
			t.Fatalf("connected_slaves while syncing: %q", n)
		}
		c.Close()
		pollUntil(t, 10*time.Second, "Redis dropping the replica", func() bool { return connectedReplicas(t, tp) == "0" })
	})

	t.Run("PSYNC answers FULLRESYNC, and what the client pipelined after it reaches Redis", func(t *testing.T) {
		c := tp.raw(t)
		c.send("PSYNC ? -1\r\nREPLCONF ACK 4242\r\n")
		if line := c.line(); !strings.HasPrefix(line, "+FULLRESYNC ") {
			t.Fatalf("PSYNC: %q", line)
		}
		pollUntil(t, 10*time.Second, "Redis seeing the replica's ACK", func() bool {
			return strings.Contains(tp.direct(t).Info(ctx, "replication").Val(), "offset=4242")
		})
	})
}

func TestSyncDeniedByPolicy(t *testing.T) {
	pol, err := policy.New(policy.Config{DefaultRules: policy.PresetProduction}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp := startReplicationProxy(t, pol)
	c := tp.raw(t)
	c.send("REPLCONF capa eof\r\n")
	if v, ok := c.reply().(error); !ok || !strings.Contains(v.Error(), "replica's command") {
		t.Fatalf("REPLCONF capa when SYNC is denied: %v", v)
	}
	c.send("SYNC\r\n")
	if v, ok := c.reply().(error); !ok || !strings.HasPrefix(v.Error(), "NOPERM") {
		t.Fatalf("SYNC under the production preset: %v", v)
	}
	c.send("PING\r\n")
	if v := c.reply(); v != "PONG" {
		t.Fatalf("PING after the refused SYNC: %v", v)
	}
}

func TestSyncUpstreamUnreachable(t *testing.T) {
	tp := startReplicationProxy(t, nil)
	tp.Redis.Stop()
	c := tp.raw(t)
	c.send("SYNC\r\n")
	if _, ok := c.reply().(error); !ok {
		t.Fatal("SYNC with Redis down did not answer an error")
	}
	c.send("ECHO still-here\r\n")
	c.reply() // an answer (Redis is still down), not a closed connection
}

func TestShutdownEndsReplicationStream(t *testing.T) {
	tp := startReplicationProxy(t, nil)
	c := tp.raw(t)
	c.send("SYNC\r\n")
	for {
		if line := c.line(); strings.HasPrefix(line, "$") {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Server.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a replica streaming: %v", err)
	}
	_, _ = io.Copy(io.Discard, c.r) // the rest of the payload, then the close
	pollUntil(t, 10*time.Second, "Redis dropping the replica", func() bool { return connectedReplicas(t, tp) == "0" })
}

// After SYNC, the link to Redis runs as respguard's upstream user: a
// command written into the stream would be judged by Redis under that
// user, not the client's. Only REPLCONF passes; anything else ends the
// link unsent.
func TestSyncStreamCarriesOnlyReplconf(t *testing.T) {
	pol, err := policy.New(policy.Config{Users: map[string]string{
		"default": "on nopass ~* &* +@all -config -acl",
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp := startReplicationProxy(t, pol)
	ctx, direct := ctxT(t), tp.direct(t)
	for _, tc := range []struct{ sync, cmd string }{
		{"SYNC", "CONFIG SET maxmemory-policy allkeys-lru"},
		{"PSYNC ? -1", "ACL SETUSER evil on >x ~* +@all"},
	} {
		c := tp.raw(t)
		c.send(tc.cmd[:strings.IndexByte(tc.cmd, ' ')] + "\r\n") // refused before SYNC: a user denied it
		c.reply()
		c.send(tc.sync + "\r\n")
		for {
			if line := c.line(); strings.HasPrefix(line, "$") || strings.HasPrefix(line, "+FULLRESYNC") {
				break
			}
		}
		pollUntil(t, 10*time.Second, "Redis seeing the replica", func() bool { return connectedReplicas(t, tp) == "1" })
		c.send(tc.cmd + "\r\n")
		if _, err := io.Copy(io.Discard, c.r); err != nil { // the rest of the payload, then the close
			t.Fatalf("%s after %s: the link did not end: %v", tc.cmd, tc.sync, err)
		}
		pollUntil(t, 10*time.Second, "Redis dropping the replica", func() bool { return connectedReplicas(t, tp) == "0" })
	}
	if got := direct.ConfigGet(ctx, "maxmemory-policy").Val()["maxmemory-policy"]; got != "noeviction" {
		t.Errorf("CONFIG SET written after SYNC by a user denied CONFIG ran: maxmemory-policy is %q", got)
	}
	if users := direct.Do(ctx, "ACL", "USERS").String(); strings.Contains(users, "evil") {
		t.Errorf("ACL SETUSER written after PSYNC by a user denied ACL ran: %s", users)
	}
}
