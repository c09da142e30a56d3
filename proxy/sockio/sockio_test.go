package sockio

import (
	"bytes"
	"syscall"
	"testing"
)

// socketPair returns two connected non-blocking Unix stream sockets.
func socketPair(t *testing.T) (a, b uintptr) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
	})
	return uintptr(fds[0]), uintptr(fds[1])
}

func TestReadOfAnEmptySocketSaysEAGAIN(t *testing.T) {
	a, _ := socketPair(t)
	n, err := Read(a, make([]byte, 16))
	if n != 0 || err != syscall.EAGAIN {
		t.Fatalf("Read = %d, %v; want 0, EAGAIN", n, err)
	}
}

func TestWrittenBytesAreRead(t *testing.T) {
	a, b := socketPair(t)
	if n, err := Write(a, []byte("*1\r\n$4\r\nPING\r\n")); n != 14 || err != nil {
		t.Fatalf("Write = %d, %v; want 14, nil", n, err)
	}
	buf := make([]byte, 64)
	n, err := Read(b, buf)
	if err != nil || !bytes.Equal(buf[:n], []byte("*1\r\n$4\r\nPING\r\n")) {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

func TestReadAfterThePeerClosedReturnsZero(t *testing.T) {
	a, b := socketPair(t)
	if err := syscall.Shutdown(int(b), syscall.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	if n, err := Read(a, make([]byte, 16)); n != 0 || err != nil {
		t.Fatalf("Read = %d, %v; want 0, nil (end of file)", n, err)
	}
}

func TestWriteToAFullSocketSaysEAGAIN(t *testing.T) {
	a, _ := socketPair(t)
	chunk := make([]byte, 64<<10)
	for i := 0; ; i++ {
		n, err := Write(a, chunk)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || n <= 0 || i > 1<<14 {
			t.Fatalf("Write = %d, %v after %d writes; want EAGAIN once the socket is full", n, err, i)
		}
	}
}

func TestEmptyBuffersAreFine(t *testing.T) {
	a, _ := socketPair(t)
	if n, err := Write(a, nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
}
