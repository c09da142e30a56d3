// Package sockio reads and writes non-blocking sockets with system calls
// the Go scheduler is not told about.
//
// A read or write on a non-blocking socket returns at once (EAGAIN when it
// would block), so the scheduler loses nothing by not seeing it: there is no
// processor to hand off while it runs. What it saves is the runtime's
// bookkeeping around an announced system call and, above all, waking the
// sysmon thread: the first announced system call after every processor was
// idle wakes it (a futex wake-up and a thread switch), so a proxy that idles
// between requests paid that on every request. cloudwego/netpoll reads and
// writes its sockets the same way. The caller still waits for readiness
// through the runtime's poller (syscall.RawConn); a goroutine busy for long
// is then preempted once sysmon wakes for another reason (a timer, any
// other system call).
package sockio

import (
	"syscall"
	"unsafe"
)

// Read reads from the non-blocking descriptor fd into b, as read(2).
func Read(fd uintptr, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Write writes b to the non-blocking descriptor fd, as write(2).
func Write(fd uintptr, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
