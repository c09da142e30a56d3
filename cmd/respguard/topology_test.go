package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

func TestTopologyConfigIsValidated(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"upstream:\n  mode: ring\n", "upstream.mode"},
		{"upstream:\n  mode: cluster\n  addresses: [nohost]\n", "upstream.addresses"},
		{"upstream:\n  mode: cluster\n  addresses: [127.0.0.1:7000]\n  read_from: nearest\n", "upstream.read_from"},
		{"upstream:\n  mode: sentinel\n  addresses: [127.0.0.1:26379]\n", "upstream.sentinel.master_name"},
		{"upstream:\n  read_from: replica\n", "upstream.read_from"},
		{"upstream:\n  addresses: [127.0.0.1:7000]\n", "upstream.addresses"},
	} {
		_, _, err := load(newFlags(), []string{"--config", writeConfig(t, tc.body)}, noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %s", tc.body, err, tc.want)
		}
	}
}

func TestClusterModeServesOneEndpoint(t *testing.T) {
	rc := redistest.StartCluster(t, 3, 0)
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	serveInProcess(t, fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\nupstream:\n  mode: cluster\n  addresses: [%s]\n", listen, rc.Addrs()[0]))
	waitListening(t, listen)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: listen, MaxRetries: -1})
	defer c.Close()
	for i := range 50 {
		if err := c.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatalf("SET through respguard in cluster mode: %v", err)
		}
	}
	if n := c.DBSize(ctx).Val(); n != 50 {
		t.Errorf("DBSIZE = %d, want 50 (summed over the primaries)", n)
	}
	hello, err := c.Do(ctx, "HELLO", "3").Result()
	if err != nil || !strings.Contains(fmt.Sprint(hello), "mode:standalone") {
		t.Errorf("HELLO = %v, %v; respguard presents a standalone endpoint", hello, err)
	}
}

// TestSentinelModeFollowsAFailover runs respguard in front of a primary, a
// replica and three sentinels, kills the primary, and checks that respguard
// serves again from the promoted replica with no reply reaching the wrong
// client along the way.
func TestSentinelModeFollowsAFailover(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	ss := redistest.StartSentinels(t, primary, 3, "mymaster")
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	logs := serveInProcess(t, fmt.Sprintf("listen: %s\nadmin:\n  listen: \"off\"\nupstream:\n  mode: sentinel\n  addresses: [%s]\n  sentinel:\n    master_name: mymaster\n",
		listen, strings.Join(ss.Addrs(), ", ")))
	waitListening(t, listen)
	ctx := context.Background()

	const workers = 4
	var (
		mu       sync.Mutex
		wrong    []string
		running  sync.WaitGroup
		recovery = make(chan struct{}, workers)
	)
	stop := make(chan struct{})
	killed := make(chan struct{})
	for w := range workers {
		running.Add(1)
		go func() {
			defer running.Done()
			c := redis.NewClient(&redis.Options{Addr: listen, MaxRetries: -1})
			defer c.Close()
			servedAfterKill := false
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := fmt.Sprintf("w%d-%d", w, i)
				got, err := c.Echo(ctx, want).Result()
				if err == nil && got != want {
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("ECHO %s answered %s", want, got))
					mu.Unlock()
				}
				select {
				case <-killed:
					if err == nil && c.Set(ctx, fmt.Sprint("after:", w), want, 0).Err() == nil && !servedAfterKill {
						servedAfterKill = true
						recovery <- struct{}{}
					}
				default:
				}
			}
		}()
	}
	primary.Stop()
	killedAt := time.Now()
	close(killed)
	for range workers {
		select {
		case <-recovery:
		case <-time.After(30 * time.Second):
			t.Fatalf("respguard did not serve writes within 30 s of the primary's death\n%s", logs.String())
		}
	}
	t.Logf("every worker wrote through respguard again %v after the primary was killed", time.Since(killedAt).Round(time.Millisecond))
	close(stop)
	running.Wait()
	if len(wrong) > 0 {
		t.Fatalf("replies reached the wrong command: %q", wrong)
	}
	direct := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer direct.Close()
	if role := direct.Do(ctx, "ROLE").Val(); !strings.Contains(fmt.Sprint(role), "master") {
		t.Errorf("the replica was not promoted: ROLE = %v", role)
	}
	if n := direct.Exists(ctx, "after:0", "after:1", "after:2", "after:3").Val(); n != workers {
		t.Errorf("%d of %d writes after the failover reached the new primary", n, workers)
	}
	if !strings.Contains(logs.String(), "primary changed") {
		t.Errorf("no failover in the log:\n%s", logs.String())
	}
}
