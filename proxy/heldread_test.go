package proxy

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respguard/respguard/proxy/resp"
	"github.com/respguard/respguard/proxy/sockio"
)

// newHeldPair returns a held read of the server end of a loopback TCP
// connection, a request parser reading through it, and both ends.
func newHeldPair(t *testing.T) (h *heldRead, rr *resp.RequestReader, server, client *net.TCPConn) {
	t.Helper()
	server, client = tcpPair(t)
	raw, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	h = newHeldRead(raw)
	return h, resp.NewRequestReader(heldReady{h}, resp.Limits{}), server, client
}

// waitIOWait polls the goroutine dump until a goroutine running a held read
// is parked in the network poller.
func waitIOWait(t *testing.T) {
	t.Helper()
	pollUntil(t, 10*time.Second, "a held read waiting in the poller", func() bool { return goroutineRuns("[IO wait", "heldRead") })
}

func TestHeldReadWaitsWithoutReadingADrainedSocket(t *testing.T) {
	h, rr, server, client := newHeldPair(t)
	got := make(chan string, 1)
	waiting := false // a readOne has not answered yet
	defer func() {
		if waiting { // a failed check left one read waiting: end it first
			client.Close()
			<-got
		}
		h.release()
	}()
	var readCalls, eagainCalls atomic.Int32 // the waiting goroutine's, read by this one
	h.sysRead = func(fd uintptr, p []byte) (int, error) {
		n, err := sockio.Read(fd, p)
		readCalls.Add(1)
		if err == syscall.EAGAIN {
			eagainCalls.Add(1)
		}
		return n, err
	}
	counts := func() (reads, eagains int32) { return readCalls.Load(), eagainCalls.Load() }
	readOne := func() {
		cmd, err := rr.ReadCommand()
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(bytes.Join(cmd.Args, []byte(" ")))
	}

	// The first read finds nothing, waits, and reads what comes: the
	// readiness that woke it is spent.
	waiting = true
	go readOne()
	waitIOWait(t)
	if _, err := client.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	s := <-got
	waiting = false
	if s != "PING" {
		t.Fatalf("first read: %q", s)
	}
	if reads, eagains := counts(); reads != 2 || eagains != 1 {
		t.Fatalf("first read: %d reads, %d EAGAIN; want 2 and 1", reads, eagains)
	}

	// That read drained the socket: the next one waits without trying.
	waiting = true
	go readOne()
	waitIOWait(t)
	if reads, eagains := counts(); reads != 2 {
		t.Fatalf("a read of a drained socket was tried before waiting (%d reads, %d EAGAIN)", reads, eagains)
	}
	if _, err := client.Write([]byte("ECHO x\r\n")); err != nil {
		t.Fatal(err)
	}
	s = <-got
	waiting = false
	if s != "ECHO x" {
		t.Fatalf("second read: %q", s)
	}
	if reads, eagains := counts(); reads != 3 || eagains != 1 {
		t.Fatalf("second read: %d reads, %d EAGAIN in all; want 3 and 1", reads, eagains)
	}

	// Released, the socket is the caller's again: a plain read works and
	// a Close does not wait.
	h.release()
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := server.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read after release: %q %v", b, err)
	}
}

// heldReady reads through a heldRead, as socketReader does.
type heldReady struct{ h *heldRead }

func (r heldReady) Read([]byte) (int, error)              { return 0, io.ErrNoProgress }
func (r heldReady) ReadReady(b *resp.Lender) (int, error) { return r.h.readReady(b) }

// Another goroutine ends a connection whose read is held open (the session
// is handling a command) without waiting for it, and the reader then sees
// EOF; a Close would wait until the held read is released.
func TestShutDownDoesNotWaitForAHeldRead(t *testing.T) {
	h, rr, _, client := newHeldPair(t)
	defer h.release()
	if _, err := client.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := rr.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		shutDown(h.raw)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("shutDown waited for the held read")
	}
	if _, err := rr.ReadCommand(); err != io.EOF {
		t.Fatalf("read after shutDown: %v, want EOF", err)
	}
	b := make([]byte, 1)
	if _, err := client.Read(b); err != io.EOF {
		t.Fatalf("the peer after shutDown: %v, want EOF", err)
	}
}
