package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const schedBatchSupported = true

// setSchedBatch puts every thread of the process under SCHED_BATCH, keeping
// each thread's nice value, and returns how many threads it found. A thread
// inherits its maker's policy, so threads the runtime makes later have it
// too; a thread made during a pass, by one not yet set, is found by the
// next pass, and passes repeat until one finds nothing to change.
func setSchedBatch() (threads int, err error) {
	for range 100 {
		tids, err := threadIDs("/proc/self/task")
		if err != nil {
			return 0, err
		}
		changed := false
		for _, tid := range tids {
			attr, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) { // the thread has exited
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("read thread %d's policy: %w", tid, err)
			}
			if attr.Policy == unix.SCHED_BATCH {
				continue
			}
			attr.Policy, attr.Priority, attr.Flags = unix.SCHED_BATCH, 0, 0
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return 0, fmt.Errorf("set thread %d's policy: %w", tid, err)
			}
			changed = true
		}
		if !changed {
			return len(tids), nil
		}
	}
	return 0, errors.New("threads kept appearing without the policy")
}

// threadIDs lists the threads in a process's /proc task directory.
func threadIDs(taskDir string) ([]int, error) {
	entries, err := os.ReadDir(taskDir)
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
