package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
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
	var stderr strings.Builder
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
	// A slow command in flight when SIGTERM arrives still gets its reply.
	slow := make(chan error, 1)
	go func() { slow <- c.Do(ctx, "DEBUG", "SLEEP", "0.5").Err() }()
	waitForCommand(t, rs.Addr, "debug")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Fatalf("in-flight DEBUG SLEEP during drain: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("respguard did not exit after SIGTERM")
	}
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
