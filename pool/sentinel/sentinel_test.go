package sentinel

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
	"go.uber.org/goleak"
)

func TestWatcherFindsThePrimaryAndStaysWithoutAFailover(t *testing.T) {
	d := startDeployment(t, 3)
	dead := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	cfg := Config{Addresses: append([]string{dead}, d.sentinels.Addrs()...), MasterName: masterName}
	ignore := goleak.IgnoreCurrent()
	w, err := New(context.Background(), cfg, pool.Config{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if w.Addr() != d.primary.Addr {
		t.Fatalf("Addr() = %s, want the primary %s (the dead sentinel first in the list is skipped)", w.Addr(), d.primary.Addr)
	}
	changes, stop := run(t, w, nil)
	pollUntil(t, 10*time.Second, "the re-check on subscribing", func() bool { return w.completedChecks() >= 1 })
	before := w.completedChecks()
	w.Recheck()
	pollUntil(t, 10*time.Second, "the asked re-check", func() bool { return w.completedChecks() > before })
	before = w.completedChecks()
	w.switched(dead) // a switch message naming a node that is not a primary
	pollUntil(t, 10*time.Second, "the re-check on a bogus switch", func() bool { return w.completedChecks() > before })
	if len(changes) != 0 {
		t.Fatalf("onChange(%s) without a failover", <-changes)
	}
	if w.Addr() != d.primary.Addr {
		t.Fatalf("Addr() = %s after re-checks, want %s", w.Addr(), d.primary.Addr)
	}
	stop()
	goleak.VerifyNone(t, ignore)
}

func TestNewFailsWhenNoSentinelKnowsTheMaster(t *testing.T) {
	d := startDeployment(t, 1)
	cfg := Config{Addresses: d.sentinels.Addrs(), MasterName: "unknown"}
	_, err := New(context.Background(), cfg, pool.Config{}, nil)
	if !errors.Is(err, ErrNoPrimary) || !strings.Contains(err.Error(), "does not monitor") {
		t.Fatalf("err = %v, want ErrNoPrimary saying the sentinel does not monitor it", err)
	}
}
