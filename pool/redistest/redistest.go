// Package redistest starts real redis-server processes on free loopback ports for tests.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server child process owned by one test. Stop (also run by
// t.Cleanup) kills it; Start brings it back on the same port and directory.
type Server struct {
	Addr string
	Port int
	Dir  string

	t     testing.TB
	extra []string
	cmd   *exec.Cmd
	done  chan struct{}
}

// Start launches redis-server on a free port with persistence off. extra are
// additional command-line arguments, e.g. "--requirepass", "secret".
// The test is skipped when redis-server is not installed, unless CI is set,
// in which case it fails.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	s := &Server{Port: FreePort(t), Dir: t.TempDir(), t: t, extra: extra}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again after Stop (it must not be running).
func (s *Server) Restart() {
	s.t.Helper()
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.Dir,
		"--daemonize", "no", "--loglevel", "warning", "--enable-debug-command", "yes",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	s.cmd = exec.Command("redis-server", append(args, s.extra...)...)
	// A group of its own, so that Stop kills the children Redis forks (a
	// replication or BGSAVE child writing into Dir) with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	s.waitReady()
}

// waitReady polls with PING until the server answers (not a sleep: each
// attempt is a real connection; the loop is bounded to 10 s).
func (s *Server) waitReady() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			s.t.Fatalf("redis-server exited at start: %s", log)
		default:
		}
		if s.ping() == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s not ready after 10s", s.Addr)
}

func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	return pingConn(c)
}

// pingConn sends PING on c, expects PONG (or NOAUTH: the server is up), and closes c.
func pingConn(c net.Conn) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Stop kills the server, and any child it forked, and waits for it to
// exit. Safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Pid returns the process id of the running server.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// FreePort returns a loopback TCP port that was free a moment ago and that
// no earlier FreePort call of this process returned: the kernel may offer a
// closed port again at once, and two ports asked for in a row (a listener
// and an admin listener) must differ.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if handedOut.claim(port) {
			return port
		}
	}
	t.Fatal("find free port: the kernel kept offering ports already handed out")
	return 0
}

// handedOut is the process-wide set of ports FreePort returned (ports are a
// process-wide resource, so the set is too).
var handedOut = portSet{ports: make(map[int]bool)}

type portSet struct {
	mu    sync.Mutex // guards ports
	ports map[int]bool
}

// claim records port and reports whether it was not recorded before.
func (s *portSet) claim(port int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports[port] {
		return false
	}
	s.ports[port] = true
	return true
}
