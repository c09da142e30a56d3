package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/respguard/respguard/pool/redistest"
)

func TestScrapeInfoRepeatsUntilShutdown(t *testing.T) {
	tel, err := New(context.Background(), Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{})
	tel.ScrapeInfo(context.Background(), time.Millisecond, func(ctx context.Context) (string, error) {
		select {
		case calls <- struct{}{}:
		case <-ctx.Done():
		}
		return infoSample, nil
	})
	for range 3 {
		<-calls // the first scrape is immediate, the others on the ticker
	}
	if err := tel.Shutdown(context.Background()); err != nil { // waits for the goroutine (goleak checks)
		t.Fatal(err)
	}
	if err := tel.Shutdown(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("second Shutdown = %v", err)
	}
	tel.ScrapeInfo(context.Background(), time.Millisecond, func(context.Context) (string, error) {
		t.Error("a scraper started after Shutdown ran")
		return "", nil
	})
}

func TestFailedScrapeExportsOnlyRedisUpZero(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	ctx := context.Background()
	if err := tel.ScrapeInfoOnce(ctx, func(context.Context) (string, error) { return infoSample, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection refused")
	if err := tel.ScrapeInfoOnce(ctx, func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("ScrapeInfoOnce = %v", err)
	}
	families := scrape(t, tel)
	if up, ok := metricValue(families, "respguard_redis_up"); !ok || up != 0 {
		t.Fatalf("respguard_redis_up = %v, %v", up, ok)
	}
	if _, ok := families["respguard_redis_memory_used_bytes"]; ok {
		t.Fatal("stale used_memory exported after a failed scrape")
	}
}

// TestAgainstRealRedis scrapes a real redis-server's INFO into the gauges
// and follows it through /readyz as it stops and restarts.
func TestAgainstRealRedis(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory", "64mb")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Get(ctx, "k")       // a hit
	rdb.Get(ctx, "missing") // a miss

	tel := newTestTelemetry(t, Config{}, Options{})
	fetch := func(ctx context.Context) (string, error) { return rdb.Info(ctx).Result() }
	if err := tel.ScrapeInfoOnce(ctx, fetch); err != nil {
		t.Fatal(err)
	}
	families := scrape(t, tel)
	for name, check := range map[string]func(float64) bool{
		"respguard_redis_up":                           func(v float64) bool { return v == 1 },
		"respguard_redis_memory_used_bytes":            func(v float64) bool { return v > 0 },
		"respguard_redis_memory_max_bytes":             func(v float64) bool { return v == 64<<20 },
		"respguard_redis_memory_fragmentation_ratio":   func(v float64) bool { return v > 0 },
		"respguard_redis_keyspace_hits_total":          func(v float64) bool { return v == 1 },
		"respguard_redis_keyspace_misses_total":        func(v float64) bool { return v == 1 },
		"respguard_redis_keyspace_hit_ratio":           func(v float64) bool { return v == 0.5 },
		"respguard_redis_keys_evicted_total":           func(v float64) bool { return v == 0 },
		"respguard_redis_keys_expired_total":           func(v float64) bool { return v == 0 },
		"respguard_redis_clients_connected":            func(v float64) bool { return v >= 1 },
		"respguard_redis_clients_max":                  func(v float64) bool { return v > 0 },
		"respguard_redis_clients_blocked":              func(v float64) bool { return v == 0 },
		"respguard_redis_connections_rejected_total":   func(v float64) bool { return v == 0 },
		"respguard_redis_instantaneous_ops_per_second": func(v float64) bool { return v >= 0 },
		"respguard_redis_replication_offset_bytes":     func(v float64) bool { return v >= 0 },
	} {
		if v, ok := metricValue(families, name); !ok || !check(v) {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}

	ready := tel.AdminHandler(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	if code, _ := get(t, ready, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with Redis up = %d", code)
	}
	srv.Stop()
	if code, _ := get(t, ready, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis stopped = %d", code)
	}
	if err := tel.ScrapeInfoOnce(ctx, fetch); err == nil {
		t.Fatal("INFO scrape of a stopped Redis succeeded")
	}
	srv.Restart()
	if code, body := get(t, ready, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after restart = %d %s", code, body)
	}
}

func TestScrapeLogsStateChangesNotEveryAttempt(t *testing.T) {
	var logs syncLog
	tel := newTestTelemetry(t, Config{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	down := func(context.Context) (string, error) { return "", errors.New("connection refused") }
	upFetch := func(context.Context) (string, error) { return infoSample, nil }
	for _, fetch := range []func(context.Context) (string, error){upFetch, down, down, down, down, upFetch, upFetch, down, down} {
		tel.scrapeWithTimeout(ctx, time.Minute, fetch)
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n != 2 {
		t.Errorf("%d WARN lines, want 2 (one per outage):\n%s", n, out)
	}
	if n := strings.Count(out, "succeeded again"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, out)
	}
}

// syncLog is a log sink safe for concurrent writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
