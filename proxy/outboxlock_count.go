//go:build lockcount

package proxy

import (
	"sync"
	"sync/atomic"
)

// outboxLockCount counts outbox lock acquisitions in lockcount builds, which
// exist to measure the reply path (go test -tags lockcount); it is never in
// a production build.
var outboxLockCount atomic.Int64

// outboxMutex is sync.Mutex counting its acquisitions.
type outboxMutex struct{ sync.Mutex }

func (m *outboxMutex) Lock() {
	outboxLockCount.Add(1)
	m.Mutex.Lock()
}

func (m *outboxMutex) TryLock() bool {
	outboxLockCount.Add(1)
	return m.Mutex.TryLock()
}

// outboxLocks reports how many times any outbox lock was taken.
func outboxLocks() int64 { return outboxLockCount.Load() }
