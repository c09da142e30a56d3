package pool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/respguard/respguard/proxy/resp"
	"github.com/respguard/respguard/proxy/sockio"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

func TestSocketIOOnAPlainSocketReadsAndWritesRaw(t *testing.T) {
	c, _ := tcpPair(t)
	r, w := socketIO(c)
	if _, ok := r.(*sockReader); !ok {
		t.Errorf("reader is %T, want *sockReader", r)
	}
	if _, ok := w.(*sockWriter); !ok {
		t.Errorf("writer is %T, want *sockWriter", w)
	}
}

func TestSocketIOOnAnythingElseUsesTheConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r, w := socketIO(a)
	if r != io.Reader(a) || w != io.Writer(a) {
		t.Errorf("socketIO(net.Pipe) = %T, %T; want the conn itself", r, w)
	}
}

func TestSockWriterWaitsWhileTheSocketIsFull(t *testing.T) {
	c, s := tcpPair(t)
	_, w := socketIO(c)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: far more than the socket buffers hold
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	n, err := w.Write(want)
	if n != len(want) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, not the %d written", len(b), len(want))
	}
}

func TestSockReaderReadsWhatArrives(t *testing.T) {
	c, s := tcpPair(t)
	r, _ := socketIO(c)
	go func() { _, _ = s.Write([]byte("+PONG\r\n")) }() // the read waits for it
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

func TestSockReaderSaysEOFWhenThePeerCloses(t *testing.T) {
	c, s := tcpPair(t)
	r, _ := socketIO(c)
	s.Close()
	if n, err := r.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestSockReaderHonoursTheReadDeadline(t *testing.T) {
	c, _ := tcpPair(t)
	r, _ := socketIO(c)
	_ = c.SetReadDeadline(time.Now()) // already passed
	if _, err := r.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read error = %v; want a deadline error", err)
	}
}

func TestSockWriterReportsAWriteToAResetConnectionAsAnOpError(t *testing.T) {
	c, s := tcpPair(t)
	_, w := socketIO(c)
	_ = s.(*net.TCPConn).SetLinger(0) // close with a reset
	s.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil { // waits for the reset
		t.Fatal("read from a reset connection succeeded")
	}
	_, err := w.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("Write error = %v; want a *net.OpError for write", err)
	}
}

// pipeOver returns a Pipe on a loopback connection whose far end the test
// plays as Redis.
func pipeOver(t *testing.T) (*Pipe, net.Conn) {
	t.Helper()
	c, s := tcpPair(t)
	r, w := socketIO(c)
	pr := &progressReader{src: r}
	p := newPipe(c, w, pr, resp.NewReplyReader(pr), 0, 2)
	t.Cleanup(func() { _ = p.Close() })
	return p, s
}

// readNow returns what the socket holds right now, without waiting.
func readNow(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var n int
	_ = raw.Read(func(fd uintptr) bool {
		n, _ = sockio.Read(fd, buf)
		return true
	})
	return buf[:max(n, 0)]
}

func TestSendOnAnIdlePipeWritesBeforeReturning(t *testing.T) {
	p, redis := pipeOver(t)
	cmd := resp.AppendCommandStrings(nil, "GET", "k")
	if err := p.Send(nil, 1, cmd, nil); err != nil {
		t.Fatal(err)
	}
	// Written by Send itself, not by the writer goroutine it would wake.
	if got := readNow(t, redis); !bytes.Equal(got, cmd) {
		t.Fatalf("right after Send the socket holds %q, want %q", got, cmd)
	}
}

func TestWhatAFullSocketLeavesOfADirectWriteGoesFirst(t *testing.T) {
	p, redis := pipeOver(t)
	big := resp.AppendCommand(nil, []byte("SET"), []byte("k"), bytes.Repeat([]byte("v"), 16<<20)) // more than the socket takes
	want := append([]byte(nil), big...)
	if err := p.Send(nil, 1, big, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // queued behind the rest of the big one
		cmd := resp.AppendCommandStrings(nil, "INCR", fmt.Sprint("k", i))
		want = append(want, cmd...)
		if err := p.Send(nil, uint64(i+2), cmd, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Play Redis: answer each command, as commands sent while written ones
	// await their replies are held until those replies are in.
	var got []byte
	rd := resp.NewRequestReader(redis, resp.Limits{})
	for range 101 {
		cmd, err := rd.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cmd.Raw...)
		if _, err := redis.Write([]byte("+OK\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Redis received the commands out of order or altered")
	}
}
