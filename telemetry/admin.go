package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler returns a new mux serving the admin endpoints:
//
//	GET /metrics        Prometheus text exposition of Options.Registry
//	GET /healthz        200 "ok" while the process is alive
//	GET /readyz         200 "ready" when ready(ctx) returns nil, else 503 and the error
//	GET /debug/slowlog  the slow log as a JSON array, newest first
//
// ready is called per request with a context that ends after 2s or when the
// client goes away; nil means always ready. The caller owns the mux and may
// add routes (e.g. /debug/bigkeys).
func (t *Telemetry) AdminHandler(ready func(context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(t.logger.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		t.serveReady(w, r, ready)
	})
	mux.HandleFunc("GET /debug/slowlog", t.serveSlowlog)
	return mux
}

func (t *Telemetry) serveReady(w http.ResponseWriter, r *http.Request, ready func(context.Context) error) {
	if ready == nil {
		writeText(w, http.StatusOK, "ready\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), defaultReadyTimeout)
	defer cancel()
	if err := ready(ctx); err != nil {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

func (t *Telemetry) serveSlowlog(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(t.Slowlog()); err != nil {
		t.logger.Debug("write /debug/slowlog", "err", err)
	}
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
