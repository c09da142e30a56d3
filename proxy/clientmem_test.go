//go:build linux

package proxy

import (
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/respguard/respguard/pool"
)

// clientMemory is what a proxy's Go runtime holds per connected client
// (heap and goroutine stacks in use), idle right after connecting and
// again after one PING each.
type clientMemory struct {
	idle, afterPing           float64 // heap and stacks
	idleStack, afterPingStack float64 // of which goroutine stacks
	idleGoroutines            int     // goroutines more than before the clients connected
	afterPingGoroutines       int
}

// measureClientMemory connects n clients to tp and reports the bytes per
// client. The clients are raw sockets outside Go's runtime, so the memory
// measured is the proxy's alone: its sessions, their goroutines, buffers and
// accepted connections. With parking on, each reading waits until every
// client is parked.
func measureClientMemory(t testing.TB, tp *testProxy, n int) clientMemory {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", tp.Addr)
	if err != nil {
		t.Fatal(err)
	}
	base, baseStack := settledMemory(t, func() bool { return tp.Server.Connected() == 0 })
	baseGoroutines := runtime.NumGoroutine()
	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	})
	for range n {
		fds = append(fds, rawDial(t, addr))
	}
	parked := func() bool { return tp.Server.parker == nil || tp.Server.Parked() == int64(n) }
	idle, idleStack := settledMemory(t, func() bool { return tp.Server.Connected() == int64(n) && parked() })
	idleGoroutines := runtime.NumGoroutine() - baseGoroutines
	ping := []byte("*1\r\n$4\r\nPING\r\n")
	for _, fd := range fds {
		if _, err := syscall.Write(fd, ping); err != nil {
			t.Fatal(err)
		}
	}
	for _, fd := range fds {
		rawExpect(t, fd, "+PONG\r\n")
	}
	after, afterStack := settledMemory(t, parked)
	afterGoroutines := runtime.NumGoroutine() - baseGoroutines
	per := func(v, base uint64) float64 { return (float64(v) - float64(base)) / float64(n) }
	return clientMemory{
		idle: per(idle, base), afterPing: per(after, base),
		idleStack: per(idleStack, baseStack), afterPingStack: per(afterStack, baseStack),
		idleGoroutines: idleGoroutines, afterPingGoroutines: afterGoroutines,
	}
}

// settledMemory waits for ready, then returns HeapInuse+StackInuse and
// StackInuse once two readings 50 ms apart agree within 0.5% (the sessions
// have reached their read and parked).
func settledMemory(t testing.TB, ready func() bool) (total, stack uint64) {
	t.Helper()
	pollUntil(t, 30*time.Second, "clients connected", ready)
	var m runtime.MemStats
	read := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	prev := read()
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		cur := read()
		if max(cur, prev)-min(cur, prev) < cur/200 {
			break
		}
		prev = cur
	}
	return m.HeapInuse + m.StackInuse, m.StackInuse
}

// rawDial connects a blocking socket to addr outside Go's network poller.
func rawDial(t testing.TB, addr *net.TCPAddr) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	tv := syscall.Timeval{Sec: 20}
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	return fd
}

// rawExpect reads exactly len(want) bytes from fd and compares them.
func rawExpect(t testing.TB, fd int, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	for got := 0; got < len(buf); {
		n, err := syscall.Read(fd, buf[got:])
		if err != nil || n == 0 {
			t.Fatalf("read: %d, %v", n, err)
		}
		got += n
	}
	if string(buf) != want {
		t.Fatalf("got %q, want %q", buf, want)
	}
}

// BenchmarkClientMemory reports the proxy's memory per connected client,
// idle and after one PING each, with idle clients parked and with parking
// off (run with -benchtime=1x: each run connects 2,000 clients).
func BenchmarkClientMemory(b *testing.B) {
	for _, bc := range []struct {
		name      string
		parkAfter time.Duration
	}{{"parked", 20 * time.Millisecond}, {"goroutine", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			tp := startProxy(b, func(c *Config, _ *pool.Config) { c.Client.ParkAfter = bc.parkAfter })
			for b.Loop() {
			}
			m := measureClientMemory(b, tp, 2000)
			b.ReportMetric(m.idle, "B/idle-client")
			b.ReportMetric(m.afterPing, "B/client-after-PING")
			b.ReportMetric(m.idleStack, "stack-B/idle-client")
			b.ReportMetric(m.afterPingStack, "stack-B/client-after-PING")
		})
	}
}

// TestClientMemory holds the proxy's heap per client after a command well
// under what a held read buffer (4 KiB) and a ring of eight reply slots
// (2 KiB) took on their own: both are taken only while a client has work.
// An idle client is parked: no goroutine, and at most 2 KiB in all (about
// 1.5 KiB measured: the session and outbox structs, the accepted
// connection, map entries; 3.4 KiB with a goroutine).
func TestClientMemory(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *pool.Config) { c.Client.ParkAfter = 20 * time.Millisecond })
	m := measureClientMemory(t, tp, 500)
	heap := m.afterPing - m.afterPingStack
	t.Logf("per client: idle %.0f B (stacks %.0f B), after PING %.0f B (stacks %.0f B); goroutines %+d, %+d",
		m.idle, m.idleStack, m.afterPing, m.afterPingStack, m.idleGoroutines, m.afterPingGoroutines)
	if heap > 6<<10 {
		t.Fatalf("%.0f bytes of heap per client after a PING", heap)
	}
	// A parked client has no goroutine. The stacks of goroutines that ended
	// are partly kept by the runtime for reuse (up to 64 per P), so the
	// count of goroutines is what proves it, not the bytes of stacks.
	if m.idleGoroutines > 8 || m.afterPingGoroutines > 8 {
		t.Fatalf("%d and %d goroutines more with %d parked clients than with none (idle, after a PING)", m.idleGoroutines, m.afterPingGoroutines, 500)
	}
	if !raceEnabled && m.idle > 2048 {
		t.Fatalf("%.0f bytes per parked client that sent nothing", m.idle)
	}
}

// TestSessionSize keeps the session and outbox structs, allocated for
// every connected client, within their size classes of Go's allocator (416
// and 352 bytes): a field more moves one to the next class and costs 32
// bytes per client (parked ones included). Make room (a rarely used part
// behind a pointer, or in the scratch an active client has) before adding
// one.
func TestSessionSize(t *testing.T) {
	if size := unsafe.Sizeof(session{}); size > 416 {
		t.Fatalf("session is %d bytes, over the 416-byte size class", size)
	}
	if size := unsafe.Sizeof(outbox{}); size > 352 {
		t.Fatalf("outbox is %d bytes, over the 352-byte size class", size)
	}
}
