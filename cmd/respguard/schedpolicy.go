package main

import (
	"fmt"
	"log/slog"
)

// The CPU scheduling policies respguard can run its threads under
// (sched_policy).
const (
	// SchedNormal leaves the policy respguard was started with (usually
	// SCHED_OTHER, or whatever chrt set).
	SchedNormal = "normal"
	// SchedBatch puts every thread under Linux's SCHED_BATCH: same CPU share,
	// but a thread woken by a client's write does not preempt the task
	// running on that CPU. When respguard shares CPUs with its clients (a
	// sidecar, or a busy host), the client then writes a whole burst of
	// commands before respguard reads them, and respguard sends Redis fewer,
	// larger writes. The price: on a busy CPU a woken respguard waits for the
	// running task's slice (up to a few milliseconds) instead of running at
	// once. On an idle CPU nothing changes.
	SchedBatch = "batch"
)

// validateSchedPolicy checks sched_policy.
func validateSchedPolicy(p string) error {
	switch p {
	case SchedNormal:
		return nil
	case SchedBatch:
		if !schedBatchSupported {
			return fmt.Errorf("sched_policy: %q needs Linux's SCHED_BATCH; use %q on this system", p, SchedNormal)
		}
		return nil
	}
	return fmt.Errorf("sched_policy: %q is not a policy: %q or %q", p, SchedNormal, SchedBatch)
}

// applySchedPolicy puts the process's threads under the configured policy.
func applySchedPolicy(p string, log *slog.Logger) error {
	if p != SchedBatch {
		return nil
	}
	n, err := setSchedBatch()
	if err != nil {
		return fmt.Errorf("sched_policy: batch: %w", err)
	}
	log.Info("threads run under SCHED_BATCH (sched_policy: batch)", "threads", n)
	return nil
}
