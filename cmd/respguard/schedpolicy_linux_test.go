package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/respguard/respguard/pool/redistest"
)

// threadPolicies counts pid's threads by scheduling policy.
func threadPolicies(t *testing.T, pid int) map[uint32]int {
	t.Helper()
	tids, err := threadIDs(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]int{}
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) { // the thread has exited
			continue
		}
		if err != nil {
			t.Fatalf("sched_getattr(%d): %v", tid, err)
		}
		out[attr.Policy]++
	}
	return out
}

// With sched_policy: batch, every thread of the binary runs under
// SCHED_BATCH: those there when it starts and those the runtime makes
// under load; with the default, none does.
func TestBinarySchedPolicyCoversEveryThread(t *testing.T) {
	bin := buildBinary(t)
	rs := redistest.Start(t)
	for _, policy := range []string{SchedBatch, SchedNormal} {
		t.Run(policy, func(t *testing.T) {
			listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
			cmd := exec.Command(bin, "--listen", listen, "--upstream", rs.Addr, "--admin-listen", "off")
			cmd.Env = append(os.Environ(), "RESPGUARD_SCHED_POLICY="+policy, "GOMAXPROCS=4")
			stderr := startBinary(t, cmd)
			waitListening(t, listen)
			// Load from many clients at once makes the runtime start more
			// threads than it had at start.
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 32)
			for i := range 32 {
				wg.Go(func() {
					c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true, ReadTimeout: -1, WriteTimeout: -1})
					defer c.Close()
					for j := range 200 {
						if err := c.Set(ctx, fmt.Sprintf("sched:%d:%d", i, j), j, 0).Err(); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("SET: %v\n%s", err, stderr.String())
			}
			got := threadPolicies(t, cmd.Process.Pid)
			total := 0
			for _, n := range got {
				total += n
			}
			want := unix.SCHED_NORMAL
			if policy == SchedBatch {
				want = unix.SCHED_BATCH
				if !strings.Contains(stderr.String(), "SCHED_BATCH") {
					t.Errorf("no log line says the policy was applied:\n%s", stderr.String())
				}
			}
			t.Logf("thread policies after load: %v", got)
			if got[uint32(want)] != total || total < 2 {
				t.Fatalf("thread policies %v (policy number: count), want all %d of them %d", got, total, want)
			}
		})
	}
}
