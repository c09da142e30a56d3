package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tidwall "github.com/tidwall/resp"
)

// Sentinels are redis-server --sentinel processes monitoring one primary,
// owned by one test. Each Server's Stop (also run by t.Cleanup) kills that
// sentinel; Restart is not supported (it would start a plain redis-server).
type Sentinels struct {
	Servers    []*Server
	MasterName string

	password string // the sentinels' requirepass, for the helper's own queries
}

// Failover settings of the generated sentinel configuration: as fast as
// Sentinel allows, so a failover test takes seconds.
const (
	sentinelDownAfter       = 1000 // ms without a valid reply before the primary is subjectively down
	sentinelFailoverTimeout = 3000 // ms; also the wait before a failed failover is retried (twice this)
)

// StartSentinels starts n sentinels on free ports monitoring primary as
// masterName (quorum n/2+1), and waits until every one of them knows the
// primary, each replica attached to it, and the other n-1 sentinels. extra
// are lines appended to each sentinel's configuration file, e.g.
// "requirepass secret" (the helper then authenticates with it) or
// "sentinel auth-pass <masterName> <password>" for a primary with a password.
func StartSentinels(t testing.TB, primary *Server, n int, masterName string, extra ...string) *Sentinels {
	t.Helper()
	ss := &Sentinels{MasterName: masterName, password: sentinelPassword(extra)}
	for range n {
		ss.Servers = append(ss.Servers, startSentinel(t, primary, n, masterName, extra))
	}
	replicas := connectedReplicas(t, primary)
	for _, s := range ss.Servers {
		s.waitReady()
		ss.waitDiscovery(s, replicas, n-1)
	}
	return ss
}

// Addrs returns the sentinels' addresses, in start order.
func (ss *Sentinels) Addrs() []string {
	addrs := make([]string, len(ss.Servers))
	for i, s := range ss.Servers {
		addrs[i] = s.Addr
	}
	return addrs
}

// startSentinel writes a configuration for one sentinel and starts it, not
// waiting for it to be ready.
func startSentinel(t testing.TB, primary *Server, n int, name string, extra []string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	s := &Server{Port: FreePort(t), Dir: t.TempDir(), t: t}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	conf := filepath.Join(s.Dir, "sentinel.conf") // Sentinel rewrites it: it must be writable
	if err := os.WriteFile(conf, []byte(sentinelConfig(s, primary, n, name, extra)), 0o600); err != nil {
		t.Fatalf("write sentinel config: %v", err)
	}
	s.cmd = exec.Command("redis-server", conf, "--sentinel")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-sentinel: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	t.Cleanup(s.Stop)
	return s
}

// sentinelConfig is the configuration file of sentinel s.
func sentinelConfig(s, primary *Server, n int, name string, extra []string) string {
	lines := []string{
		"port " + strconv.Itoa(s.Port), "bind 127.0.0.1", "daemonize no", "dir " + s.Dir,
		"logfile " + filepath.Join(s.Dir, "redis.log"), "loglevel notice",
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", name, primary.Port, n/2+1),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, sentinelDownAfter),
		fmt.Sprintf("sentinel failover-timeout %s %d", name, sentinelFailoverTimeout),
		fmt.Sprintf("sentinel parallel-syncs %s 1", name),
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

// waitDiscovery polls sentinel s until it sees at least replicas connected
// replicas of the primary and peers other sentinels (bounded to 20 s:
// sentinels find each other through hello messages sent every 2 s).
func (ss *Sentinels) waitDiscovery(s *Server, replicas, peers int) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		r, p, err := ss.discovered(s.Addr)
		if err == nil && r >= replicas && p >= peers {
			return
		}
		got = fmt.Sprintf("%d replicas, %d sentinels, error %v", r, p, err)
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("sentinel %s: want %d replicas and %d other sentinels after 20s, have %s", s.Addr, replicas, peers, got)
}

// discovered returns how many connected replicas and other sentinels the
// sentinel at addr knows for the monitored primary.
func (ss *Sentinels) discovered(addr string) (replicas, peers int, err error) {
	reps, err := DoAuthValue(addr, ss.password, "SENTINEL", "REPLICAS", ss.MasterName)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range reps.Array() {
		if sentinelField(r, "flags") == "slave" { // not s_down, not disconnected
			replicas++
		}
	}
	sens, err := DoAuthValue(addr, ss.password, "SENTINEL", "SENTINELS", ss.MasterName)
	return replicas, len(sens.Array()), err
}

// sentinelField returns the value of key in a flat field/value array, as
// SENTINEL REPLICAS returns per replica.
func sentinelField(v tidwall.Value, key string) string {
	a := v.Array()
	for i := 0; i+1 < len(a); i += 2 {
		if a[i].String() == key {
			return a[i+1].String()
		}
	}
	return ""
}

// sentinelPassword returns the requirepass among configuration lines.
func sentinelPassword(lines []string) string {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 2 && strings.EqualFold(f[0], "requirepass") {
			return f[1]
		}
	}
	return ""
}

// StartReplica starts a redis-server replicating primary (extra as for
// Start; a primary with a password needs "--masterauth", pw) and waits until
// its link to the primary is up. It sets the primary's
// repl-diskless-sync-delay to 0 so the first sync starts at once.
func StartReplica(t testing.TB, primary *Server, extra ...string) *Server {
	t.Helper()
	// The first sync would otherwise wait 5 s for more replicas to join it.
	if _, err := DoAuthValue(primary.Addr, argAfter(primary.extra, "--requirepass"),
		"CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatalf("primary %s: %v", primary.Addr, err)
	}
	args := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}, extra...)
	s := Start(t, args...)
	password := argAfter(extra, "--requirepass")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, err := DoAuthValue(s.Addr, password, "INFO", "replication")
		if err == nil && strings.Contains(info.String(), "master_link_status:up") {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("replica %s: link to %s not up after 10s", s.Addr, primary.Addr)
	return nil
}

// connectedReplicas returns connected_slaves from the primary's INFO.
func connectedReplicas(t testing.TB, primary *Server) int {
	t.Helper()
	info, err := DoAuthValue(primary.Addr, argAfter(primary.extra, "--requirepass"), "INFO", "replication")
	if err != nil {
		t.Fatalf("INFO replication on %s: %v", primary.Addr, err)
	}
	for _, line := range strings.Split(info.String(), "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// argAfter returns the argument following flag in args, or "".
func argAfter(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}
