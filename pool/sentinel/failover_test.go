package sentinel

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

// TestFailoverIsFollowed: one primary, one replica, three sentinels on
// loopback; the primary is killed under load; respguard's pool follows the
// promotion and serves again, and no reply reaches the wrong client.
func TestFailoverIsFollowed(t *testing.T) {
	d := startDeployment(t, 3)
	ctx := context.Background()
	w, err := New(ctx, Config{Addresses: d.sentinels.Addrs(), MasterName: masterName}, pool.Config{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pool.New(pool.Config{Address: w.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	pl.SetOnUnavailable(func(error) { w.Recheck() })
	changes, _ := run(t, w, pl.Retarget)
	ld := startLoad(t, pl, 4)
	pollUntil(t, 10*time.Second, "load running", func() bool { return ld.oks.Load() > 100 })
	pinned, err := pl.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	d.primary.Stop()
	expectChange(t, changes, d.replica.Addr, 30*time.Second)
	t.Logf("primary killed; pool retargeted %s later", time.Since(killed).Round(time.Millisecond))

	if err := pinned.Send(nil, 0, nil, [][]byte{[]byte("PING")}); err == nil {
		t.Fatal("a client pinned to the old primary could still send")
	}
	pinned.Release()
	oks := ld.oks.Load()
	pollUntil(t, 10*time.Second, "serving after the failover", func() bool { return ld.oks.Load() > oks+100 })
	ld.stop()
	if n := ld.wrong.Load(); n > 0 {
		t.Fatalf("%d replies reached the wrong client, e.g. %s", n, ld.firstWrong.Load())
	}
	t.Logf("%d correct replies, %d error replies", ld.oks.Load(), ld.errs.Load())
	expectWritable(t, pl, d.replica)
}

// expectWritable writes through pl's shared connection and reads the key
// back from srv directly.
func expectWritable(t *testing.T, pl *pool.Pool, srv *redistest.Server) {
	t.Helper()
	pipe, err := pl.Shared(context.Background(), 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &echoClient{replies: make(chan string, 1)}
	if err := pipe.Send(c, 1, nil, [][]byte{[]byte("SET"), []byte("after"), []byte("failover")}); err != nil {
		t.Fatal(err)
	}
	if got := <-c.replies; got != "+OK\r\n" {
		t.Fatalf("SET on the new primary: %q", got)
	}
	vals, err := pool.NewControl(pool.Config{Address: srv.Addr}).Do(context.Background(), []string{"GET", "after"})
	if err != nil || vals[1].String() != "failover" {
		t.Fatalf("GET after on %s: %v %v", srv.Addr, vals, err)
	}
}

// TestSentinelAuthAndTLS: the watcher reaches a sentinel that requires a
// password over TLS, for queries and for its subscription, which delivers a
// (forced) failover.
func TestSentinelAuthAndTLS(t *testing.T) {
	ca := redistest.NewCA(t)
	cert := ca.Issue("sentinel")
	tlsAddr := "127.0.0.1:" + itoa(redistest.FreePort(t))
	d := startDeployment(t, 1, "requirepass s3cret", "tls-port "+tlsAddr[len("127.0.0.1:"):],
		"tls-cert-file "+cert.CertFile, "tls-key-file "+cert.KeyFile, "tls-ca-cert-file "+ca.CertFile, "tls-auth-clients no")
	cfg := Config{Addresses: []string{tlsAddr}, MasterName: masterName, Password: "s3cret", TLS: &tls.Config{RootCAs: ca.Pool()}}
	ctx := context.Background()

	bad := cfg
	bad.Password = "wrong"
	if _, err := New(ctx, bad, pool.Config{}, nil); !errors.Is(err, ErrNoPrimary) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong sentinel password: err = %v", err)
	}
	w, err := New(ctx, cfg, pool.Config{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if w.Addr() != d.primary.Addr {
		t.Fatalf("Addr() = %s, want %s", w.Addr(), d.primary.Addr)
	}
	changes, _ := run(t, w, nil)
	pollUntil(t, 10*time.Second, "subscribed (its re-check done)", func() bool { return w.completedChecks() >= 1 })
	forceFailover(t, cfg)
	expectChange(t, changes, d.replica.Addr, 30*time.Second)
}

// forceFailover sends SENTINEL FAILOVER to the first sentinel of cfg.
func forceFailover(t *testing.T, cfg Config) {
	t.Helper()
	c := pool.NewControl(cfg.controlConfig(cfg.Addresses[0]))
	vals, err := c.Do(context.Background(), []string{"SENTINEL", "FAILOVER", cfg.MasterName})
	if err != nil || vals[1].String() != "OK" {
		t.Fatalf("SENTINEL FAILOVER: %v %v", vals, err)
	}
}
