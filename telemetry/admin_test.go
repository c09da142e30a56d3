package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealthzIsAlwaysOK(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	if code, body := get(t, tel.AdminHandler(nil), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
}

func TestReadyzFollowsTheReadyFunction(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	var down atomic.Bool
	down.Store(true)
	h := tel.AdminHandler(func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		if down.Load() {
			return errors.New("upstream unreachable")
		}
		return nil
	})
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "upstream unreachable") {
		t.Fatalf("/readyz while down = %d %q", code, body)
	}
	down.Store(false)
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after recovery = %d", code)
	}
}

func TestReadyzWithoutAFunctionIsReady(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	if code, _ := get(t, tel.AdminHandler(nil), "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d", code)
	}
}

func TestDebugSlowlogServesJSON(t *testing.T) {
	tel := newTestTelemetry(t, Config{Slowlog: SlowlogConfig{Threshold: time.Millisecond}}, Options{})
	c := command("hgetall", 20*time.Millisecond)
	c.Statement = "HGETALL big"
	tel.CommandDone(c)
	code, body := get(t, tel.AdminHandler(nil), "/debug/slowlog")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if len(entries) != 1 {
		t.Fatalf("entries = %v", entries)
	}
	e := entries[0]
	if e["command"] != "hgetall" || e["statement"] != "HGETALL big" || e["duration_ns"] != float64(20*time.Millisecond) ||
		e["user"] != "app" || e["client_addr"] != "10.0.0.7:51234" || e["id"] != float64(1) {
		t.Fatalf("entry = %v", e)
	}
}

func TestAdminMuxAcceptsMoreRoutes(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	mux := tel.AdminHandler(nil)
	mux.HandleFunc("GET /debug/bigkeys", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("[]")) })
	if code, body := get(t, mux, "/debug/bigkeys"); code != http.StatusOK || body != "[]" {
		t.Fatalf("/debug/bigkeys = %d %q", code, body)
	}
}
