package telemetry

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMetricsAfterAKnownWorkload(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	for range 3 {
		tel.CommandDone(command("get", 200*time.Microsecond))
	}
	wrong := command("get", 2*time.Millisecond)
	wrong.ErrPrefix = "WRONGTYPE"
	tel.CommandDone(wrong)
	local := command("ping", 30*time.Microsecond)
	local.Upstream = 0
	tel.CommandDone(local)
	tel.PolicyDenied("flushall", "dangerous")
	tel.PolicyDenied("flushall", "dangerous")
	tel.GuardAction("rewritten", "del_to_unlink")
	for range 4 {
		tel.ClientAccepted()
	}
	tel.ClientClosed()
	tel.ClientRejected()
	tel.OutputOverflow()
	tel.AuthFailure()
	tel.BytesIn(100)
	tel.BytesOut(250)
	tel.ObservePool(func() PoolStats {
		return PoolStats{Total: 4, Idle: 2, Acquired: 1, Constructing: 1, Max: 8, AcquireCount: 42, AcquireWait: 1500 * time.Millisecond,
			EmptyAcquireCount: 5, CanceledAcquireCount: 2, Shared: 3, BreakersOpen: 1, DialErrors: 6, Reconnects: 2}
	})
	tel.ObserveInFlight(func() int64 { return 9 })

	families := scrape(t, tel)
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"respguard_command_duration_seconds", []string{"command", "get"}, 4},
		{"respguard_command_duration_seconds", []string{"command", "ping"}, 1},
		{"respguard_command_upstream_duration_seconds", []string{"command", "get"}, 4},
		{"respguard_command_errors_total", []string{"command", "get", "error", "WRONGTYPE"}, 1},
		{"respguard_policy_denials_total", []string{"command", "flushall", "reason", "dangerous"}, 2},
		{"respguard_guard_actions_total", []string{"action", "rewritten", "reason", "del_to_unlink"}, 1},
		{"respguard_clients_accepted_total", nil, 4},
		{"respguard_clients_closed_total", nil, 1},
		{"respguard_clients_connected", nil, 3},
		{"respguard_clients_rejected_total", nil, 1},
		{"respguard_clients_output_overflows_total", nil, 1},
		{"respguard_auth_failures_total", nil, 1},
		{"respguard_client_received_bytes_total", nil, 100},
		{"respguard_client_sent_bytes_total", nil, 250},
		{"respguard_upstream_dial_errors_total", nil, 6},
		{"respguard_upstream_reconnects_total", nil, 2},
		{"respguard_upstream_connections", []string{"kind", "shared"}, 3},
		{"respguard_upstream_connections", []string{"kind", "dedicated"}, 4},
		{"respguard_upstream_breaker_open", nil, 1},
		{"respguard_commands_in_flight", nil, 9},
		{"respguard_pool_empty_acquires_total", nil, 5},
		{"respguard_pool_canceled_acquires_total", nil, 2},
		{"respguard_pool_connections", []string{"state", "idle"}, 2},
		{"respguard_pool_connections", []string{"state", "acquired"}, 1},
		{"respguard_pool_connections", []string{"state", "constructing"}, 1},
		{"respguard_pool_connections_max", nil, 8},
		{"respguard_pool_acquires_total", nil, 42},
		{"respguard_pool_acquire_wait_seconds_total", nil, 1.5},
	}
	for _, w := range want {
		t.Run(fmt.Sprintf("%s%v is %v", w.name, w.labels, w.value), func(t *testing.T) {
			got, ok := metricValue(families, w.name, w.labels...)
			if !ok || got != w.value {
				t.Fatalf("got %v (present %v), want %v", got, ok, w.value)
			}
		})
	}
	t.Run("the upstream histogram skips locally answered commands", func(t *testing.T) {
		if _, ok := metricValue(families, "respguard_command_upstream_duration_seconds", "command", "ping"); ok {
			t.Fatal("ping has an upstream series")
		}
	})
	t.Run("latencies land in the right buckets", func(t *testing.T) {
		h := families["respguard_command_duration_seconds"].GetMetric()
		for _, m := range h {
			if !hasLabels(m, []string{"command", "get"}) {
				continue
			}
			for _, b := range m.GetHistogram().GetBucket() {
				if b.GetUpperBound() == 0.00025 && b.GetCumulativeCount() != 3 || b.GetUpperBound() == 0.0025 && b.GetCumulativeCount() != 4 {
					t.Fatalf("bucket le=%v has %d", b.GetUpperBound(), b.GetCumulativeCount())
				}
			}
		}
	})
}

func TestRedisGaugesAreAbsentBeforeAScrape(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	if _, ok := scrape(t, tel)["respguard_redis_up"]; ok {
		t.Fatal("respguard_redis_up exported before ScrapeInfo")
	}
}

func TestLabelCardinalityIsBounded(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	c := command("get", time.Microsecond)
	c.ErrPrefix = "-some free text"
	tel.CommandDone(c)
	for i := range maxCommandNames + 50 {
		tel.CommandDone(command(fmt.Sprintf("cmd%d", i), time.Microsecond))
	}
	families := scrape(t, tel)
	if n := len(families["respguard_command_duration_seconds"].GetMetric()); n > maxCommandNames+2 {
		t.Fatalf("%d command series, want at most %d", n, maxCommandNames+2)
	}
	if _, ok := metricValue(families, "respguard_command_duration_seconds", "command", "other"); !ok {
		t.Fatal("overflowing commands are not counted as other")
	}
	if v, ok := metricValue(families, "respguard_command_errors_total", "command", "get", "error", "other"); !ok || v != 1 {
		t.Fatal("a free-text error prefix is not labelled other")
	}
}

func TestAppendInfoSection(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	tel.ClientAccepted()
	tel.ClientAccepted()
	tel.CommandDone(command("get", time.Microsecond))
	tel.PolicyDenied("keys", "dangerous")
	got := string(tel.AppendInfoSection([]byte("# Server\r\nredis_version:7.0.15\r\n")))
	want := "# Server\r\nredis_version:7.0.15\r\n\r\n# Respguard\r\n" +
		"respguard_connected_clients:2\r\nrespguard_total_connections_received:2\r\n" +
		"respguard_rejected_connections:0\r\nrespguard_output_buffer_overflows:0\r\nrespguard_auth_failures:0\r\n" +
		"respguard_total_commands_processed:1\r\nrespguard_total_error_replies:0\r\n" +
		"respguard_policy_denials:1\r\nrespguard_guard_actions:0\r\n" +
		"respguard_total_net_input_bytes:0\r\nrespguard_total_net_output_bytes:0\r\n" +
		"respguard_upstream_dial_errors:0\r\nrespguard_upstream_reconnects:0\r\nrespguard_slowlog_len:0\r\n"
	if got != want {
		t.Fatalf("INFO section:\n%q\nwant\n%q", got, want)
	}
	tel.ObservePool(func() PoolStats {
		return PoolStats{Total: 5, Idle: 4, Acquired: 1, Max: 10, AcquireCount: 7, AcquireWait: 3 * time.Millisecond, Shared: 2, DialErrors: 3}
	})
	if got := string(tel.AppendInfoSection(nil)); !containsAll(got, "# Respguard\r\n", "respguard_pool_total_conns:7\r\n",
		"respguard_pool_shared_conns:2\r\n", "respguard_pool_dedicated_conns:5\r\n", "respguard_upstream_dial_errors:3\r\n",
		"respguard_pool_acquire_wait_usec:3000\r\n") || got[0] != '#' {
		t.Fatalf("INFO section with pool:\n%s", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
