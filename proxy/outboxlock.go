//go:build !lockcount

package proxy

import "sync"

// outboxMutex is the outbox's lock. A build with the lockcount tag counts
// its acquisitions (see outboxlock_count.go); this one is sync.Mutex itself.
type outboxMutex = sync.Mutex

// outboxLocks reports how many times any outbox lock was taken, or -1 when
// the build does not count them.
func outboxLocks() int64 { return -1 }
