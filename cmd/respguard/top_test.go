package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// liveRespguard runs the binary in front of a real Redis with the
// production preset, a small guard.max_elements and every command in the
// slow log, drives traffic through it until the test ends, and returns
// the admin address.
func liveRespguard(t *testing.T, bin string) string {
	t.Helper()
	rs := redistest.Start(t)
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	cfg := fmt.Sprintf("listen: %s\nupstream: {address: %s}\nadmin: {listen: %s}\n"+
		"telemetry: {scrape_interval: 1s, slowlog: {threshold: 1us}}\n"+
		"policy: {default_rules: production}\nguard: {max_elements: 100}\n", listen, rs.Addr, admin)
	file := filepath.Join(t.TempDir(), "respguard.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", file)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	poll(t, func() bool { return c.Ping(ctx).Err() == nil }, "respguard answers PING:\n"+stderr.String())
	fields := make([]any, 0, 400)
	for i := range 200 {
		fields = append(fields, "f"+strconv.Itoa(i), i)
	}
	if err := c.HSet(ctx, "top:big", fields...).Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for range 6 {
					p.Get(ctx, "top:hot") // the hottest key
				}
				p.Set(ctx, "top:k"+strconv.Itoa(i%20), i, time.Minute)
				p.HLen(ctx, "top:big")
				p.HGetAll(ctx, "top:big") // refused by the guard
				p.Keys(ctx, "top:*")      // denied by the production preset
				return nil
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitListening(t, admin) // the admin server starts beside the proxy's listener, not before it
	return admin
}

var (
	getRow      = regexp.MustCompile(`(?m)^get\s+([0-9.]+k?)\s`)
	deniedLine  = regexp.MustCompile(`policy denied ([0-9.]+k?)/s  guard refused ([0-9.]+k?)/s`)
	bigKeyLine  = regexp.MustCompile(`(?m)^top:big\s+200\s`)
	hotKeyFirst = regexp.MustCompile(`(?m)^BIG KEYS.*\n.*top:hot\s`)
)

// checkTopScreen checks a screen of respguard top against the traffic
// liveRespguard drives.
func checkTopScreen(t *testing.T, screen string) {
	t.Helper()
	if m := getRow.FindStringSubmatch(screen); m == nil || m[1] == "0.0" {
		t.Errorf("no get row with traffic:\n%s", screen)
	}
	if m := deniedLine.FindStringSubmatch(screen); m == nil || m[1] == "0.0" || m[2] == "0.0" {
		t.Errorf("denials and guard refusals not counted:\n%s", screen)
	}
	for what, re := range map[string]*regexp.Regexp{"big key with 200 elements": bigKeyLine, "hottest key": hotKeyFirst} {
		if !re.MatchString(screen) {
			t.Errorf("no %s:\n%s", what, screen)
		}
	}
	for _, want := range []string{"upstream: redis up", "SLOWEST RECENT", "redis: used"} {
		if !strings.Contains(screen, want) {
			t.Errorf("no %q:\n%s", want, screen)
		}
	}
}

func TestTopOnceAgainstLiveRespguard(t *testing.T) {
	bin := buildBinary(t)
	admin := liveRespguard(t, bin)
	var out []byte
	pollWithin(t, 30*time.Second, func() bool {
		var err error
		out, err = exec.Command(bin, "top", "--once", "--interval", "300ms", "--admin", admin).CombinedOutput()
		if err != nil {
			t.Fatalf("respguard top --once: %v\n%s", err, out)
		}
		return strings.Contains(string(out), "redis: used") // the first INFO scrape is in
	}, "respguard top --once shows Redis's INFO")
	checkTopScreen(t, string(out))
	if strings.Contains(string(out), "q quit") {
		t.Error("--once prints the help line of the live view")
	}
}

func TestTopRejectsBadFlagsAndAMissingAdmin(t *testing.T) {
	for _, args := range [][]string{{"--sort", "size"}, {"--interval", "0s"}, {"extra"}, {"--admin", "127.0.0.1:1", "--once"}} {
		if err := run(append([]string{"top"}, args...)); err == nil {
			t.Errorf("respguard top %v succeeded", args)
		}
	}
}

// TestTopUnderTmux runs the live view in a real terminal (tmux, 80x24),
// sorts with a key, and quits with q.
func TestTopUnderTmux(t *testing.T) {
	tmuxBin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed (Debian: apt-get install tmux); skipping the terminal test")
	}
	bin := buildBinary(t)
	admin := liveRespguard(t, bin)
	socket := filepath.Join(t.TempDir(), "tmux.sock")
	tmux := func(args ...string) (string, error) {
		cmd := exec.Command(tmuxBin, append([]string{"-S", socket}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
		bin+" top --interval 300ms --admin "+admin); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = tmux("kill-server") })
	var screen string
	shows := func(want string) func() bool {
		return func() bool {
			screen, _ = tmux("capture-pane", "-p", "-t", "top")
			return strings.Contains(screen, want) && strings.Contains(screen, "redis: used") && getRow.MatchString(screen)
		}
	}
	pollWithin(t, 30*time.Second, shows("sort: ops/s"), "the live view in tmux")
	checkTopScreen(t, screen)
	lines := strings.Split(strings.TrimRight(screen, "\n"), "\n")
	if len(lines) != 24 || !strings.HasPrefix(lines[23], "q quit") {
		t.Errorf("want 24 lines ending with the help line, got %d:\n%s", len(lines), screen)
	}
	if _, err := tmux("send-keys", "-t", "top", "p"); err != nil {
		t.Fatal(err)
	}
	pollWithin(t, 30*time.Second, shows("sort: p99"), "p sorts by p99")
	if _, err := tmux("send-keys", "-t", "top", "q"); err != nil {
		t.Fatal(err)
	}
	pollWithin(t, 30*time.Second, func() bool {
		_, err := tmux("has-session", "-t", "top")
		return err != nil
	}, "q quits (the tmux session ends with the command)")
}
