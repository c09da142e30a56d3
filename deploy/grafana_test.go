package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

const dashboardFile = "grafana/respguard.json"

// dashboard is the part of Grafana's dashboard JSON model these tests read.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type templateVar struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboardIsImportable checks what Grafana's import needs and what
// makes the dashboard portable: a datasource variable that every panel
// uses, unique ids, panels inside the 24-column grid, and a query and a
// description on every panel.
func TestDashboardIsImportable(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Fatal("dashboard needs a title and a uid")
	}
	if !slices.ContainsFunc(d.Templating.List, func(v templateVar) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Fatal("no datasource variable of type prometheus")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 {
			t.Errorf("%q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 || p.Description == "" {
			t.Errorf("%q: needs datasource ${datasource}, targets and a description", p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("%q %s: query ignores the instance variable: %s", p.Title, q.RefID, q.Expr)
			}
		}
	}
}

// TestDashboardShowsThePlaybook lists the metrics the dashboard must chart:
// traffic, latency, errors, denials and guard actions, clients, upstream,
// each row of the playbook's table, big and hot keys.
func TestDashboardShowsThePlaybook(t *testing.T) {
	var all strings.Builder
	for _, q := range dashboardQueries(loadDashboard(t)) {
		all.WriteString(q.expr + "\n")
	}
	for _, m := range []string{
		"respguard_command_duration_seconds_count", "respguard_command_duration_seconds_bucket",
		"respguard_command_errors_total", "respguard_policy_denials_total", "respguard_guard_actions_total",
		"respguard_clients_connected", "respguard_clients_rejected_total", "respguard_pool_connections",
		"respguard_redis_up", "respguard_upstream_dial_errors_total",
		"respguard_redis_memory_used_bytes", "respguard_redis_memory_max_bytes",
		"respguard_redis_memory_fragmentation_ratio", "respguard_redis_keyspace_hits_total",
		"respguard_redis_keys_evicted_total", "respguard_redis_keys_expired_total",
		"respguard_redis_clients_connected", "respguard_redis_clients_max", "respguard_redis_clients_blocked",
		"respguard_redis_connections_rejected_total", "respguard_redis_instantaneous_ops_per_second",
		"respguard_redis_replica_lag_bytes", "respguard_bigkey_elements", "respguard_hotkey_requests_per_second",
	} {
		if !strings.Contains(all.String(), m+"{") {
			t.Errorf("no panel charts %s", m)
		}
	}
}

type panelQuery struct {
	panel, refID, expr string
}

// dashboardQueries returns every panel target with Grafana's variables
// replaced as Grafana would for "All" instances and a 1s scrape interval.
func dashboardQueries(d dashboard) []panelQuery {
	vars := strings.NewReplacer(`$instance`, `.+`, `$__rate_interval`, `10s`)
	var qs []panelQuery
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			qs = append(qs, panelQuery{p.Title, q.RefID, vars.Replace(q.Expr)})
		}
	}
	return qs
}

// TestDashboardAgainstRealPrometheus runs Debian's prometheus (1s scrapes,
// the alert rules loaded) against a real respguard in front of a real Redis
// with a replica, drives a little mixed traffic through it, and requires
// every panel query to return a number and every alert rule to evaluate
// without error.
func TestDashboardAgainstRealPrometheus(t *testing.T) {
	promBin, err := lookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian: apt-get install prometheus); skipping the live dashboard test")
	}
	primary := redistest.Start(t, "--maxmemory", "64mb") // as the playbook says: always cap it
	redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	rg := startRespguard(t, buildRespguard(t), primary.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	loadDone := make(chan error, 1)
	go func() { loadDone <- driveLoad(ctx, rg.listen) }()
	t.Cleanup(func() {
		cancel()
		if err := <-loadDone; err != nil {
			t.Errorf("load: %v", err)
		}
	})
	prom := startPrometheus(t, promBin, rg.admin)

	queries := requiredQueries(t, dashboardQueries(loadDashboard(t)), rg.admin)
	missing := pollFor(t, 3*time.Minute, func() []string {
		var missing []string
		for _, q := range queries {
			if err := prom.hasData(q.expr); err != nil {
				missing = append(missing, fmt.Sprintf("%s %s: %v\n  %s", q.panel, q.refID, err, q.expr))
			}
		}
		return missing
	})
	for _, m := range missing {
		t.Errorf("panel %s", m)
	}
	if err := prom.hasLabelValue("instance", "respguard_clients_connected", rg.admin); err != nil {
		t.Errorf("the instance variable's query: %v", err)
	}
	want := len(loadRules(t))
	bad := pollFor(t, time.Minute, func() []string { return prom.unhealthyRules(want) })
	for _, b := range bad {
		t.Errorf("alert rule %s", b)
	}

	// One alert end to end, with respguard's real metric names: a broken
	// config file is a failed reload, and RespguardConfigReloadFailed fires.
	if err := os.WriteFile(rg.config, []byte("policy: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if report := pollFor(t, 2*time.Minute, func() []string { return prom.notFiring("RespguardConfigReloadFailed") }); report != nil {
		t.Errorf("after a broken config file: %v", report)
	}
}

// announcedMetrics are charted before every respguard exports them: a
// query on one is required to return data only from a respguard whose
// /metrics has it. Any other metric a panel names must exist.
var announcedMetrics = []string{
	"respguard_upstream_connections", "respguard_upstream_breaker_open",
	"respguard_commands_in_flight", "respguard_config_reloads_total",
}

var metricName = regexp.MustCompile(`respguard_[a-z0-9_]+`)

// requiredQueries drops, with a log line, the queries on announced metrics
// that the running respguard does not export yet.
func requiredQueries(t *testing.T, qs []panelQuery, admin string) []panelQuery {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var required []panelQuery
	for _, q := range qs {
		pending := slices.ContainsFunc(metricName.FindAllString(q.expr, -1), func(m string) bool {
			return slices.Contains(announcedMetrics, m) && !strings.Contains(string(body), "\n"+m)
		})
		if pending {
			t.Logf("respguard does not export this yet; not required: %s %s: %s", q.panel, q.refID, q.expr)
			continue
		}
		required = append(required, q)
	}
	return required
}

// pollFor calls check until it reports nothing or within has passed, and
// returns its last report.
func pollFor(t *testing.T, within time.Duration, check func() []string) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		report := check()
		if len(report) == 0 || time.Now().After(deadline) {
			return report
		}
		<-tick.C
	}
}

type respguardProc struct{ listen, admin, config string }

// startRespguard runs the built binary in front of upstream with the
// production preset, a small guard.max_elements and a 1s INFO scrape, and
// waits for its admin endpoint.
func startRespguard(t *testing.T, bin, upstream string) respguardProc {
	t.Helper()
	rg := respguardProc{
		listen: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)),
		admin:  fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)),
	}
	cfg := fmt.Sprintf(`listen: %s
upstream: {address: %s}
admin: {listen: %s}
telemetry: {scrape_interval: 1s}
policy: {default_rules: production}
guard: {max_elements: 100}
`, rg.listen, upstream, rg.admin)
	rg.config = filepath.Join(t.TempDir(), "respguard.yaml")
	if err := os.WriteFile(rg.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "respguard", exec.Command(bin, "--config", rg.config), "http://"+rg.admin+"/healthz")
	return rg
}

// startProcess starts cmd (stopped at cleanup) and polls readyURL until it
// answers 200; its output is shown if it does not.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, readyURL string) {
	t.Helper()
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ready := pollFor(t, time.Minute, func() []string {
		select {
		case <-exited:
			return nil
		default:
		}
		if err := httpGetOK(readyURL); err != nil {
			return []string{err.Error()}
		}
		return nil
	})
	select {
	case <-exited:
		t.Fatalf("%s exited at start:\n%s", name, output.String())
	default:
	}
	if len(ready) > 0 {
		t.Fatalf("%s not ready: %v\n%s", name, ready, output.String())
	}
}

func httpGetOK(u string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// driveLoad sends a little mixed traffic through respguard until ctx ends:
// hits and misses, a hot key, a big hash whose HGETALL the guard refuses,
// KEYS (denied by the production preset) and a WRONGTYPE error. Error
// replies are expected; a connection error is not.
func driveLoad(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	fields := make([]any, 0, 400)
	for i := range 200 {
		fields = append(fields, fmt.Sprintf("f%d", i), i)
	}
	if err := c.HSet(ctx, "load:big", fields...).Err(); err != nil {
		return fmt.Errorf("HSET load:big: %w", err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		key := fmt.Sprintf("load:%d", i%50)
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, i, time.Minute)
			p.Get(ctx, key)
			p.Get(ctx, "load:hot")
			p.Get(ctx, fmt.Sprintf("load:missing:%d", i))
			p.HLen(ctx, "load:big")
			p.HGetAll(ctx, "load:big")
			p.Keys(ctx, "load:*")
			p.Incr(ctx, "load:big")
			return nil
		})
		var netErr net.Error
		if ctx.Err() == nil && (errors.As(err, &netErr) || errors.Is(err, io.EOF)) {
			return err
		}
	}
}

type prometheusProc struct{ base string }

func startPrometheus(t *testing.T, bin, target string) prometheusProc {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: respguard
    static_configs: [{targets: [%q]}]
`, rules, target)
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	cmd := exec.Command(bin, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	p := prometheusProc{base: "http://" + addr}
	startProcess(t, "prometheus", cmd, p.base+"/-/ready")
	return p
}

// apiGet decodes the data of a Prometheus HTTP API response.
func (p prometheusProc) apiGet(path string, params url.Values, data any) error {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", path, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// hasData runs an instant query and requires a sample that is a number.
func (p prometheusProc) hasData(expr string) error {
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.apiGet("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return err
	}
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) {
			return nil
		}
	}
	return fmt.Errorf("no numeric sample among %d series", len(data.Result))
}

func (p prometheusProc) hasLabelValue(label, match, want string) error {
	var values []string
	if err := p.apiGet("/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &values); err != nil {
		return err
	}
	if !slices.Contains(values, want) {
		return fmt.Errorf("label %s of %s: %v, want %s", label, match, values, want)
	}
	return nil
}

// unhealthyRules lists rules that are not evaluated and healthy, and a
// count mismatch with the rules file.
func (p prometheusProc) unhealthyRules(want int) []string {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.apiGet("/api/v1/rules", url.Values{"type": {"alert"}}, &data); err != nil {
		return []string{err.Error()}
	}
	var bad []string
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				bad = append(bad, fmt.Sprintf("%s: health %q %s", r.Name, r.Health, r.LastError))
			}
		}
	}
	if n != want {
		bad = append(bad, fmt.Sprintf("prometheus loaded %d alert rules, the file has %d", n, want))
	}
	return bad
}

// notFiring reports unless Prometheus has the alert firing.
func (p prometheusProc) notFiring(alert string) []string {
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.apiGet("/api/v1/alerts", nil, &data); err != nil {
		return []string{err.Error()}
	}
	var states []string
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == alert && a.State == "firing" {
			return nil
		}
		states = append(states, a.Labels["alertname"]+" "+a.State)
	}
	return []string{fmt.Sprintf("%s not firing; alerts: %v", alert, states)}
}
