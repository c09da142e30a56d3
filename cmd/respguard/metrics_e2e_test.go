package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// documentedMetrics are the metric names of the tables of
// telemetry/METRICS.md and README.md.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	var names []string
	for _, path := range []string{"../../telemetry/METRICS.md", "../../README.md"} {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile("(?m)^\\| `(respguard_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				names = append(names, m[1])
			}
		}
	}
	if len(names) < 45 {
		t.Fatalf("only %d metrics found in METRICS.md and README.md", len(names))
	}
	return names
}

// metricPeaks keeps, per metric family, the largest sample value seen over
// several scrapes (a histogram by its _count).
type metricPeaks map[string]float64

var sampleLine = regexp.MustCompile(`^([a-z_]+?)(_count)?(\{[^}]*\})? ([0-9.e+-]+|NaN)$`)

func (p metricPeaks) scrape(t *testing.T, admin string) string {
	t.Helper()
	_, body := httpGet(t, "http://"+admin+"/metrics")
	for line := range strings.Lines(body) {
		m := sampleLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			continue
		}
		if cur, ok := p[m[1]]; !ok || v > cur {
			p[m[1]] = v
		}
	}
	return body
}

// pollMetric scrapes until series (a full sample name with labels) is > 0.
func (p metricPeaks) pollMetric(t *testing.T, admin, series string) {
	t.Helper()
	poll(t, func() bool {
		v, ok := sample(p.scrape(t, admin), series)
		return ok && v > 0
	}, series+" > 0")
}

// TestEveryDocumentedMetricMoves runs respguard in front of a real primary
// with a replica, drives the workload each metric of METRICS.md describes
// (an outage included), and checks that every documented metric was
// exported with a non-zero value at some scrape.
func TestEveryDocumentedMetricMoves(t *testing.T) {
	rs := redistest.Start(t)
	redistest.StartReplica(t, rs)
	listen, admin := startWithAdmin(t, rs, "", `client:
  max_clients: 8
  output_buffer_limit: 1048576
  write_timeout: 1s # an overflowed client is counted once its blocked write ends
pool:
  max_conns: 1
  acquire_timeout: 100ms
  retry_backoff: 50ms
telemetry:
  scrape_interval: 50ms
policy:
  users:
    default: "on nopass ~* +@all -flushall"
`)
	ctx := context.Background()
	peaks := metricPeaks{}
	c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true, MaxRetries: -1, PoolSize: 1, ReadTimeout: 30 * time.Second})
	defer c.Close()
	direct := redis.NewClient(&redis.Options{Addr: rs.Addr, DisableIdentity: true})
	defer direct.Close()

	// Commands, errors, denials, guard actions, big and hot keys, probes, the size cache.
	for i := range 50 {
		c.HSet(ctx, "profile:1", fmt.Sprint("f", i), i)
	}
	c.HGetAll(ctx, "profile:1")
	c.HGetAll(ctx, "profile:1") // size cache hit
	c.Get(ctx, "profile:1")     // WRONGTYPE
	c.FlushAll(ctx)             // denied by policy
	c.Del(ctx, "gone")          // rewritten by the unlink guard
	c.Do(ctx, "AUTH", "nobody", "wrong")
	// A client that has sent nothing is held parked (client.park_after, on
	// by default): it counts until it leaves.
	idle, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	peaks.pollMetric(t, admin, "respguard_clients_parked")
	idle.Close()
	waitClients(t, admin, 1)
	// INFO's pool total counts the shared connection these commands used.
	info := c.Info(ctx, "respguard").Val()
	if n, _ := strconv.Atoi(infoField(info, "respguard_pool_total_conns")); n < 1 || infoField(info, "respguard_pool_shared_conns") == "0" {
		t.Errorf("INFO respguard with a shared connection open:\n%s", info)
	}
	// Redis's keyspace, expiry and eviction.
	c.Set(ctx, "hit", "v", 0)
	c.Get(ctx, "hit")
	c.Get(ctx, "miss")
	c.Set(ctx, "short", "v", time.Millisecond)
	poll(t, func() bool { return c.Exists(ctx, "short").Val() == 0 }, "short expired")
	// Redis's counters restart with it (below): see them before.
	for _, series := range []string{"respguard_redis_keys_expired_total", "respguard_redis_keyspace_hits_total",
		"respguard_redis_keyspace_misses_total", "respguard_redis_keyspace_hit_ratio"} {
		peaks.pollMetric(t, admin, series)
	}
	direct.ConfigSet(ctx, "maxmemory-policy", "allkeys-random")
	used, _ := strconv.Atoi(infoField(direct.Info(ctx, "memory").Val(), "used_memory"))
	direct.ConfigSet(ctx, "maxmemory", strconv.Itoa(used+(2<<20)))
	for i := 0; infoField(direct.Info(ctx, "stats").Val(), "evicted_keys") == "0"; i++ {
		c.Set(ctx, fmt.Sprint("fill:", i), strings.Repeat("x", 64<<10), 0)
	}
	peaks.pollMetric(t, admin, "respguard_redis_keys_evicted_total")
	peaks.pollMetric(t, admin, "respguard_redis_memory_max_bytes")
	direct.ConfigSet(ctx, "maxmemory", "0")
	// Redis refusing a connection over its maxclients.
	direct.ConfigSet(ctx, "maxclients", "1")
	if line := rawLine(t, rs.Addr, "PING\r\n"); !strings.Contains(line, "max number of clients") {
		t.Fatalf("Redis over maxclients answered %q", line)
	}
	direct.ConfigSet(ctx, "maxclients", "10000")
	peaks.pollMetric(t, admin, "respguard_redis_connections_rejected_total")
	// A blocked client: a dedicated connection acquired, commands in flight,
	// Redis's blocked_clients; a second one waits for the only pool slot
	// and gives up (an empty, then a canceled acquire).
	blocked := make(chan error, 1)
	go func() { blocked <- c.BLPop(ctx, 0, "queue").Err() }()
	peaks.pollMetric(t, admin, "respguard_redis_clients_blocked")
	peaks.pollMetric(t, admin, "respguard_commands_in_flight")
	peaks.pollMetric(t, admin, `respguard_pool_connections{state="acquired"}`)
	if line := rawLine(t, listen, "BLPOP other 0\r\n"); !strings.Contains(line, "no dedicated upstream connection") {
		t.Errorf("BLPOP with the pool exhausted: %q", line)
	}
	direct.LPush(ctx, "queue", "x")
	if err := <-blocked; err != nil {
		t.Fatalf("BLPOP: %v", err)
	}
	// Client limits: an output buffer overflow, then max_clients.
	if err := c.Set(ctx, "big", strings.Repeat("x", 2<<20), 0).Err(); err != nil {
		t.Fatalf("SET big: %v", err)
	}
	waitClients(t, admin, 1) // the raw connections above are gone: room under max_clients
	reader := rawConn(t, listen)
	fmt.Fprint(reader, strings.Repeat("GET big\r\n", 32)) // 64 MiB of replies it never reads
	peaks.pollMetric(t, admin, "respguard_clients_output_overflows_total")
	reader.Close()
	var held []net.Conn
	for range 8 { // with c's, one more than max_clients
		held = append(held, rawConn(t, listen))
	}
	peaks.pollMetric(t, admin, "respguard_clients_rejected_total")
	for _, conn := range held {
		conn.Close()
	}
	// An outage: dial errors and the open breaker, then reconnects.
	peaks.scrape(t, admin)
	rs.Stop()
	poll(t, func() bool { // each failing PING dials (once the dead connection is noticed)
		if c.Ping(ctx).Err() == nil {
			return false
		}
		v, ok := sample(peaks.scrape(t, admin), "respguard_upstream_breaker_open")
		return ok && v > 0
	}, "the breaker open while Redis is down")
	rs.Restart()
	poll(t, func() bool { return c.Ping(ctx).Err() == nil }, "Redis back through respguard")
	peaks.pollMetric(t, admin, "respguard_upstream_reconnects_total")
	poll(t, func() bool { // the replica reconnected to the restarted primary
		return strings.Contains(peaks.scrape(t, admin), "respguard_redis_replica_ack_age_seconds{")
	}, "replica metrics exported")

	// Levels that are legitimately 0 on a healthy idle test instance: they
	// must be exported, and move in the telemetry package's tests.
	zeroOK := map[string]bool{
		"respguard_redis_replica_lag_bytes": true, "respguard_redis_replica_ack_age_seconds": true,
		"respguard_redis_instantaneous_ops_per_second": true,
	}
	// Moved by a test of their own, through the built binary.
	movedElsewhere := map[string]string{
		"respguard_config_reloads_total": "TestBinaryReloadNeverLowersProtection",
	}
	for _, name := range documentedMetrics(t) {
		v, ok := peaks[name]
		switch {
		case movedElsewhere[name] != "":
		case !ok:
			t.Errorf("%s: never exported", name)
		case v <= 0 && !zeroOK[name]:
			t.Errorf("%s: never above 0", name)
		}
	}
}

// waitClients waits until respguard has at most n clients connected.
func waitClients(t *testing.T, admin string, n float64) {
	t.Helper()
	poll(t, func() bool {
		_, body := httpGet(t, "http://"+admin+"/metrics")
		v, ok := sample(body, "respguard_clients_connected")
		return ok && v <= n
	}, fmt.Sprint("at most ", n, " clients connected"))
}

// infoField returns field's value in INFO text ("" if absent).
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// rawConn dials addr; the connection is closed when the test ends.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// rawLine sends cmd on a fresh connection to addr and returns the first reply line.
func rawLine(t *testing.T, addr, cmd string) string {
	t.Helper()
	c := rawConn(t, addr)
	defer c.Close()
	fmt.Fprint(c, cmd)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}
