package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "respguard")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9-test -X main.commit=abc123", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestBinaryServesAndDrainsOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), "v9.9.9-test") || !strings.Contains(string(out), "abc123") {
		t.Fatalf("--version = %q, %v", out, err)
	}
	rs := redistest.Start(t)
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	cmd := exec.Command(bin, "--listen", listen, "--upstream", rs.Addr, "--admin-listen", "off")
	const shutdownTimeout = 30 * time.Second
	cmd.Env = append(os.Environ(), "RESPGUARD_SHUTDOWN_TIMEOUT="+shutdownTimeout.String())
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true, MaxRetries: 50, MinRetryBackoff: 10 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "through-binary", "yes", 0).Err(); err != nil {
		t.Fatalf("SET through binary: %v\n%s", err, stderr.String())
	}
	// Clients that can only wait do not hold the drain up: a BLPOP 0 and a
	// subscriber (as Redis's own SHUTDOWN, they are ended, not waited for).
	waiter := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true, MaxRetries: -1, ReadTimeout: -1})
	defer waiter.Close()
	blpop := make(chan error, 1)
	go func() { blpop <- waiter.BLPop(ctx, 0, "never-pushed").Err() }()
	sub := waiter.Subscribe(ctx, "news")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	waitForCommand(t, rs.Addr, "blpop")
	// A slow command in flight when SIGTERM arrives still gets its reply.
	slow := make(chan error, 1)
	go func() { slow <- c.Do(ctx, "DEBUG", "SLEEP", "0.5").Err() }()
	waitForCommand(t, rs.Addr, "debug")
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Fatalf("in-flight DEBUG SLEEP during drain: %v", err)
	}
	if err := <-blpop; err != redis.Nil {
		t.Fatalf("BLPOP 0 during drain = %v, want the nil reply of a timeout", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(shutdownTimeout):
		t.Fatal("respguard did not exit after SIGTERM")
	}
	if d := time.Since(start); d > shutdownTimeout/3 {
		t.Fatalf("drain took %s of a %s shutdown_timeout", d, shutdownTimeout)
	}
}

// startBinary starts cmd, collecting its standard error, and kills it when
// the test ends.
func startBinary(t *testing.T, cmd *exec.Cmd) *syncBuffer {
	t.Helper()
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return stderr
}

// waitForCommand polls the upstream's CLIENT LIST until a client is running cmd.
func waitForCommand(t *testing.T, addr string, cmd string) {
	t.Helper()
	d := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer d.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.ClientList(context.Background()).Val(), "cmd="+cmd) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no client ran %s", cmd)
}

func TestBinaryReloadsPolicyOnFileChange(t *testing.T) {
	bin := buildBinary(t)
	rs := redistest.Start(t)
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "respguard.yaml")
	write := func(body string) {
		tmp := cfgPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil { // atomic, as editors and ConfigMaps do
			t.Fatal(err)
		}
	}
	policyYAML := func(pass string) string {
		return fmt.Sprintf("listen: %s\nupstream:\n  address: %s\nadmin:\n  listen: \"off\"\nsecurity:\n  auth_rate_limit: 0\npolicy:\n  users:\n    default: \"off\"\n    app: \"on >%s ~* +@all\"\n", listen, rs.Addr, pass)
	}
	write(policyYAML("first-pass"))
	stderr := startBinary(t, exec.Command(bin, "--config", cfgPath))
	ctx := context.Background()
	auth := func(pass string) error {
		c := redis.NewClient(&redis.Options{Addr: listen, Username: "app", Password: pass, DisableIdentity: true, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	poll(t, func() bool { return auth("first-pass") == nil }, "first password accepted")
	write(policyYAML("second-pass"))
	poll(t, func() bool { return auth("second-pass") == nil }, "new password accepted after file change")
	if err := auth("first-pass"); err == nil {
		t.Fatal("old password still accepted after reload")
	}
	write("policy:\n  users:\n    app: \"on +nosuchcommand\"\n")
	poll(t, func() bool { return strings.Contains(stderr.String(), "config reload failed") }, "invalid config rejected in the log")
	if err := auth("second-pass"); err != nil {
		t.Fatalf("after an invalid reload the old policy must stay: %v", err)
	}
}

// poll retries cond (each try is a real round trip) for up to 10 s.
func poll(t *testing.T, cond func() bool, what string) {
	t.Helper()
	pollWithin(t, 10*time.Second, cond, what)
}

// pollWithin retries cond (each try is a real round trip) for up to limit.
func pollWithin(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a strings.Builder safe for the process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
