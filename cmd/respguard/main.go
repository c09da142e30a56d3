// Command respguard is a RESP-aware proxy that keeps a production Redis fast,
// safe and predictable. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/respguard/respguard/cmd/respguard/top"
	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy"
	"github.com/respguard/respguard/telemetry"
)

// Stamped at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "respguard:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "top" {
		return top.Main(context.Background(), args[1:], os.Stdout)
	}
	fs := newFlags()
	fs.SetOutput(os.Stdout) // --help is asked for: it goes to stdout
	l, err := loadAll(fs, args, os.LookupEnv)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if showVersion, _ := fs.GetBool("version"); showVersion {
		fmt.Printf("respguard %s (commit %s)\n", version, commit)
		return nil
	}
	if err != nil {
		return err
	}
	if show, _ := fs.GetBool("print-config"); show {
		return printConfig(l.v, l.cfg, os.Stdout)
	}
	log := telemetry.NewLogger(l.cfg.Log, os.Stderr)
	for _, name := range l.warnings {
		log.Warn("ignoring environment variable: it sets no configuration key", "variable", name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reload := func() (Config, error) {
		_, c, err := load(newFlags(), args, os.LookupEnv)
		return c, err
	}
	return serve(ctx, l.cfg, log, reload, l.path)
}

// serve runs the proxy until ctx is done, then drains it.
// reload re-reads the configuration (file, env, flags) for hot reload.
type reloadFunc func() (Config, error)

func serve(ctx context.Context, cfg Config, log *slog.Logger, reload reloadFunc, configFile string) error {
	if err := applySchedPolicy(cfg.SchedPolicy, log); err != nil {
		return err
	}
	pcfg, err := cfg.upstreamPoolConfig(log) // security (issue 6): upstream TLS
	if err != nil {
		return err
	}
	up, err := openUpstream(ctx, cfg, pcfg, log)
	if err != nil {
		return err
	}
	defer up.close()
	probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := up.control().Probe(probeCtx)
	cancel()
	if err != nil {
		log.Warn("upstream not reachable at start; serving anyway", "upstream", up.describe(), "error", err)
	}
	info.Mode = "standalone" // what clients see: one ordinary endpoint, whatever the topology
	registry := prometheus.NewRegistry()
	var srv *proxy.Server // set below, before the admin listener serves scrapes
	registry.MustRegister(newGuardCollector(func() *guard.Guard {
		if srv == nil {
			return nil
		}
		return srv.Guard()
	}, cfg.Telemetry.KeyLabels), newBuildInfo(version, commit))
	tel, err := telemetry.New(ctx, cfg.telemetryConfig(), telemetry.Options{Logger: log, Registry: registry})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	tel.ObservePool(up.stats)
	if cfg.Telemetry.ScrapeInterval >= 0 {
		tel.ScrapeInfo(ctx, cfg.Telemetry.ScrapeInterval, func(ctx context.Context) (string, error) { return up.control().Info(ctx) })
	}
	cmds := commandTable(ctx, up.control(), log)
	pol, err := policy.New(cfg.Policy, cmds)
	if err != nil {
		return err
	}
	grd, err := guard.New(cfg.Guard, cmds)
	if err != nil {
		return err
	}
	srv, err = proxy.NewServer(cfg.proxyConfig(), up.pool, info, proxy.Options{Logger: log, Telemetry: tel, Policy: pol, Guard: grd, Cluster: up.cluster})
	if err != nil {
		return err
	}
	up.onPrimaryChange(srv.SetUpstreamAddress)
	// --- security (issue 6): AUTH rate limit, TLS listeners, protected mode ---
	srv.SetAuthRateLimit(cfg.Security.AuthRateLimit)
	listeners, err := openListeners(cfg, log)
	if err != nil {
		return err
	}
	protect := func(c Config, p *policy.Policy) error { return checkProtectedMode(c.Security, listeners, p, log) }
	if err := protect(cfg, pol); err != nil {
		closeListeners(listeners)
		return err
	}
	// --- end security ---
	tel.ConfigLoaded(time.Now())
	rl := newReloader(&reloader{srv: srv, cmds: cmds, load: reload, protect: protect, tel: tel, log: log, path: configFile, settle: reloadSettle, running: cfg})
	srv.SetAdmin(proxy.Admin{Config: rl.settingsInForce, Reload: rl.requestReload, UpstreamMode: cfg.Upstream.Mode})
	go rl.run(ctx)
	mux := tel.AdminHandler(func(ctx context.Context) error {
		_, err := up.control().Probe(ctx)
		return err
	})
	mux.Handle("/debug/bigkeys", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g := srv.Guard(); g != nil {
			g.Handler().ServeHTTP(w, r)
		}
	}))
	mux.Handle("/debug/hotkeys", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g := srv.Guard(); g != nil {
			g.Handler().ServeHTTP(w, r)
		}
	}))
	if cfg.Admin.Pprof {
		addPprof(mux)
	}
	admin, err := startAdmin(cfg.Admin.Listen, mux, log)
	if err != nil {
		closeListeners(listeners)
		return err
	}
	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		log.Info("respguard serving", l.key, l.Addr().String(), "tls", l.tls, "mutual_tls", l.mutualTLS, "upstream", up.describe(), "mode", cfg.Upstream.Mode, "version", version)
		go func() { serveErr <- srv.Serve(l) }()
	}
	select {
	case err := <-serveErr:
		srv.Close() // and the other listeners
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining clients", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.proxyConfig().WithDefaults().ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Not a failure of respguard: clients whose replies took longer than
		// shutdown_timeout were closed, as configured.
		log.Warn("shutdown_timeout reached: closed the clients still waiting for replies", "timeout", cfg.ShutdownTimeout, "error", err)
	}
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	for range listeners {
		if err := <-serveErr; !errors.Is(err, proxy.ErrServerClosed) {
			log.Warn("serve ended", "error", err)
		}
	}
	log.Info("respguard stopped")
	return nil
}

// commandTable reads the upstream's COMMAND table (key positions and ACL
// categories exactly as that server has them), falling back to the
// built-in table of Redis 7.0 while the upstream is unreachable.
func commandTable(ctx context.Context, control *pool.Control, log *slog.Logger) *policy.Commands {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := control.Commands(ctx)
	if err == nil {
		var cmds *policy.Commands
		if cmds, err = policy.ParseCommandReply(reply); err == nil {
			return cmds
		}
	}
	log.Warn("using the built-in command table", "reason", err)
	return policy.BuiltinCommands()
}

// startAdmin serves the admin endpoints on addr ("" or "off": none).
func startAdmin(addr string, mux *http.ServeMux, log *slog.Logger) (*http.Server, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "error", err)
		}
	}()
	return hs, nil
}
