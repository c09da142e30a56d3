package top

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAdmin serves an admin endpoint whose /metrics is exposition(n); n
// grows by step on every scrape (traffic) and the test may set it.
type fakeAdmin struct {
	mu      sync.Mutex // guards n and step
	n, step int
	srv     *httptest.Server
}

const (
	slowlogJSON = `[{"id":2,"time":"2026-01-02T10:00:00Z","duration_ns":42000000,"command":"keys","statement":"KEYS ?","user":"default"},
{"id":1,"time":"2026-01-02T09:59:59Z","duration_ns":90000000,"command":"hgetall","statement":"HGETALL big","user":"app"}]`
	bigkeysJSON = `{"by_elements":[{"key":"big","elements":20000,"bytes":900000}],"by_bytes":[]}`
	hotkeysJSON = `[{"key":"hot","rate":1234.5},{"key":"warm","rate":12}]`
)

func newFakeAdmin(t *testing.T, n int) *fakeAdmin {
	f := &fakeAdmin{n: n}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		n := f.n
		f.n += f.step
		f.mu.Unlock()
		_, _ = w.Write([]byte(exposition(n)))
	})
	for path, body := range map[string]string{"/debug/slowlog": slowlogJSON, "/debug/bigkeys": bigkeysJSON, "/debug/hotkeys": hotkeysJSON} {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) })
	}
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAdmin) set(n, step int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.step = n, step
}

// exposition builds /metrics text: a get histogram with count n (all under
// 1ms), an hgetall histogram with count n/10 (all between 10ms and 100ms)
// and n/10 WRONGTYPE errors, plus the other families top reads.
func exposition(n int) string {
	r := strings.NewReplacer("N10", strconv.Itoa(n/10), "N", strconv.Itoa(n))
	return r.Replace(`# TYPE respguard_command_duration_seconds histogram
respguard_command_duration_seconds_bucket{command="get",le="0.001"} N
respguard_command_duration_seconds_bucket{command="get",le="0.01"} N
respguard_command_duration_seconds_bucket{command="get",le="0.1"} N
respguard_command_duration_seconds_bucket{command="get",le="+Inf"} N
respguard_command_duration_seconds_sum{command="get"} 1
respguard_command_duration_seconds_count{command="get"} N
respguard_command_duration_seconds_bucket{command="hgetall",le="0.001"} 0
respguard_command_duration_seconds_bucket{command="hgetall",le="0.01"} 0
respguard_command_duration_seconds_bucket{command="hgetall",le="0.1"} N10
respguard_command_duration_seconds_bucket{command="hgetall",le="+Inf"} N10
respguard_command_duration_seconds_sum{command="hgetall"} 1
respguard_command_duration_seconds_count{command="hgetall"} N10
# TYPE respguard_command_errors_total counter
respguard_command_errors_total{command="hgetall",error="WRONGTYPE"} N10
# TYPE respguard_policy_denials_total counter
respguard_policy_denials_total{command="keys",reason="production"} N10
# TYPE respguard_guard_actions_total counter
respguard_guard_actions_total{action="reject",reason="max_elements"} N10
respguard_guard_actions_total{action="rewrite",reason="unlink"} N10
# TYPE respguard_clients_connected gauge
respguard_clients_connected 12
# TYPE respguard_clients_accepted_total counter
respguard_clients_accepted_total N
# TYPE respguard_clients_rejected_total counter
respguard_clients_rejected_total 3
# TYPE respguard_redis_up gauge
respguard_redis_up 1
# TYPE respguard_pool_connections gauge
respguard_pool_connections{state="idle"} 2
respguard_pool_connections{state="acquired"} 1
# TYPE respguard_pool_connections_max gauge
respguard_pool_connections_max 64
# TYPE respguard_redis_memory_used_bytes gauge
respguard_redis_memory_used_bytes 1.5e+09
# TYPE respguard_redis_memory_max_bytes gauge
respguard_redis_memory_max_bytes 4e+09
# TYPE respguard_redis_keyspace_hits_total counter
respguard_redis_keyspace_hits_total 900
# TYPE respguard_redis_keyspace_misses_total counter
respguard_redis_keyspace_misses_total 100
# TYPE respguard_upstream_connections gauge
respguard_upstream_connections{kind="shared"} 1
respguard_upstream_connections{kind="dedicated"} 3
# TYPE respguard_upstream_breaker_open gauge
respguard_upstream_breaker_open 1
# TYPE respguard_commands_in_flight gauge
respguard_commands_in_flight 5
# TYPE respguard_some_future_metric gauge
respguard_some_future_metric 7
`)
}
