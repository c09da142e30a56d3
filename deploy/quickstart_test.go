package deploy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// quickstart runs quickstart.sh with a config for Redis rs, clients on
// listen and the admin listener on admin, and returns the running command
// and its stderr.
func quickstart(t *testing.T, bin string, rs *redistest.Server, listen, admin string) (*exec.Cmd, *lockedText) {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "respguard.yaml")
	body := fmt.Sprintf("listen: %s\nupstream:\n  address: %s\nadmin:\n  listen: %s\npolicy:\n  default_rules: production\n", listen, rs.Addr, admin)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./quickstart.sh")
	cmd.Env = append(os.Environ(), "RESPGUARD_QUICKSTART_CONFIG="+config, "RESPGUARD_QUICKSTART_BIN="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children go with it
	stderr := &lockedText{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _, _ = cmd.Process.Wait() })
	return cmd, stderr
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
}

func TestQuickstartChecksBothPortsAndNamesThem(t *testing.T) {
	bin := buildRespguard(t)
	rs := redistest.Start(t)
	t.Run("a taken admin port stops it before the banner", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		cmd, stderr := quickstart(t, bin, rs, freeAddr(t), taken.Addr().String())
		err = waitExit(cmd, time.Minute)
		out := stderr.String()
		if err == nil || !strings.Contains(out, "admin.listen") || strings.Contains(out, "respguard is starting") {
			t.Fatalf("exit %v; stderr:\n%s", err, out)
		}
	})
	t.Run("moved ports are the ones it checks, prints and serves", func(t *testing.T) {
		listen, admin := freeAddr(t), freeAddr(t)
		_, stderr := quickstart(t, bin, rs, listen, admin)
		adminPort, listenPort := admin[strings.LastIndex(admin, ":")+1:], listen[strings.LastIndex(listen, ":")+1:]
		deadline := time.Now().Add(time.Minute)
		for !healthy(admin) {
			if time.Now().After(deadline) {
				t.Fatalf("respguard not healthy on %s; stderr:\n%s", admin, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		out := stderr.String()
		for _, want := range []string{"respguard is starting", "localhost:" + adminPort + "/metrics", "redis-cli -p " + listenPort + " ping"} {
			if !strings.Contains(out, want) {
				t.Errorf("banner lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "9180") || strings.Contains(out, "6380") {
			t.Errorf("banner names a default port that is not in use:\n%s", out)
		}
	})
}

// healthy reports whether the admin listener at addr answers /healthz.
func healthy(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.0\r\n\r\n")
	buf := make([]byte, 12)
	n, _ := c.Read(buf)
	return strings.HasPrefix(string(buf[:n]), "HTTP/1.0 200")
}

func waitExit(cmd *exec.Cmd, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return fmt.Errorf("still running after %s", within)
	}
}

// lockedText collects a process's output safely for concurrent reads.
type lockedText struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedText) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedText) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
