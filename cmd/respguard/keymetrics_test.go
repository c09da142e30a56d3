package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// startWithAdmin serves respguard in process for rs with extra YAML (and
// adminKeys, indented, under admin:) and returns its client and admin
// addresses.
func startWithAdmin(t *testing.T, rs *redistest.Server, adminKeys, extra string) (listen, admin string) {
	t.Helper()
	listen = fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	admin = fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	serveInProcess(t, fmt.Sprintf("listen: %s\nupstream:\n  address: %s\n  dial_timeout: 1s\nadmin:\n  listen: %s\n%s%s",
		listen, rs.Addr, admin, adminKeys, extra))
	waitListening(t, listen)
	waitListening(t, admin) // the admin server starts beside the proxy's listener, not before it
	return listen, admin
}

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// sample returns the value of the /metrics line that starts with series.
func sample(body, series string) (float64, bool) {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func TestMetricsShowBigKeysAndGuardCounters(t *testing.T) {
	rs := redistest.Start(t)
	for _, keyLabels := range []bool{false, true} {
		t.Run(fmt.Sprint("telemetry.key_labels ", keyLabels), func(t *testing.T) {
			listen, admin := startWithAdmin(t, rs, "", fmt.Sprintf("telemetry:\n  key_labels: %v\n", keyLabels))
			ctx := context.Background()
			c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true})
			defer c.Close()
			c.Del(ctx, "profile:1")
			for i := range 50 {
				c.HSet(ctx, "profile:1", fmt.Sprint("f", i), i)
			}
			if n := len(c.HGetAll(ctx, "profile:1").Val()); n != 50 {
				t.Fatalf("HGETALL returned %d fields", n)
			}
			// A command is observed after its reply is written, off the
			// reply's path: wait until HGETALL's is.
			var body string
			poll(t, func() bool {
				_, body = httpGet(t, "http://"+admin+"/metrics")
				return strings.Contains(body, `respguard_command_duration_seconds_count{command="hgetall"`)
			}, "HGETALL observed in /metrics")
			series := `respguard_bigkey_elements{rank="1"}`
			if keyLabels {
				series = `respguard_bigkey_elements{key="profile:1",rank="1"}`
			}
			if v, ok := sample(body, series); !ok || v != 50 {
				t.Errorf("%s = %v, %v", series, v, ok)
			}
			if !keyLabels && strings.Contains(body, "profile:1") {
				t.Error("a key name reached /metrics without telemetry.key_labels")
			}
			if _, json := httpGet(t, "http://"+admin+"/debug/bigkeys"); !regexp.MustCompile(`"key":\s*"profile:1"`).MatchString(json) {
				t.Errorf("/debug/bigkeys lacks the key: %s", json)
			}
			for _, want := range []string{`respguard_guard_probes_total 1`, `respguard_command_duration_seconds_count{command="hgetall"`} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

func TestAdminBuildInfoAndPprofOptIn(t *testing.T) {
	rs := redistest.Start(t)
	_, admin := startWithAdmin(t, rs, "", "")
	_, body := httpGet(t, "http://"+admin+"/metrics")
	if !regexp.MustCompile(`(?m)^respguard_build_info\{commit="none",goversion="go[^"]+",version="dev"\} 1$`).MatchString(body) {
		t.Errorf("/metrics lacks respguard_build_info:\n%s", grepLines(body, "build_info"))
	}
	if code, _ := httpGet(t, "http://"+admin+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without admin.pprof: %d, want 404", code)
	}
	_, admin = startWithAdmin(t, rs, "  pprof: true\n", "")
	if code, _ := httpGet(t, "http://"+admin+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("/debug/pprof/ with admin.pprof: %d, want 200", code)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
