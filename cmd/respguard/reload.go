package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/proxy"
	"github.com/respguard/respguard/telemetry"
)

// reloadSettle is how long the config file must see no change before it is
// read: editors write in steps (truncate, then write; write a temporary
// file, then rename), and a reload must not catch the file between them.
const reloadSettle = 200 * time.Millisecond

// reloadableSections are the key prefixes a reload applies; every other
// key takes effect only at the next start.
var reloadableSections = []string{"policy.", "guard."}

// reloader applies configuration changes to a running server. Only the run
// goroutine uses it after construction.
type reloader struct {
	srv     *proxy.Server
	cmds    *policy.Commands
	load    reloadFunc
	protect func(Config, *policy.Policy) error // vets a policy against protected mode
	tel     *telemetry.Telemetry
	log     *slog.Logger
	path    string        // the config file ("" if none: only SIGHUP reloads)
	settle  time.Duration // quiet time after a file event before reading
	running Config        // the configuration in force: start-time keys, reloaded sections

	// For RESPGUARD CONFIG and RELOAD (see adminsettings.go), made by newReloader.
	inForce  atomic.Pointer[Config] // a copy of running, for other goroutines
	requests chan chan<- error      // reloads asked for, answered with their outcome
	stopped  chan struct{}          // closed when run returns
}

// newReloader completes r, whose configuration in force is r.running, and
// returns it.
func newReloader(r *reloader) *reloader {
	r.requests, r.stopped = make(chan chan<- error), make(chan struct{})
	r.publish()
	return r
}

// publish makes running what RESPGUARD CONFIG shows.
func (r *reloader) publish() {
	c := r.running
	r.inForce.Store(&c)
}

// run reloads on SIGHUP and, once the file has settled, on file changes,
// until ctx is done.
func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	changed := watchFile(ctx, r.path, r.log)
	defer close(r.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case done := <-r.requests:
			done <- r.reload()
			continue
		case <-hup:
		case <-changed:
			if !settle(ctx, changed, r.settle) {
				return
			}
		}
		_ = r.reload() // logged and counted
	}
}

// settle waits until changed has been quiet for d; false if ctx ended first.
func settle(ctx context.Context, changed <-chan struct{}, d time.Duration) bool {
	quiet := time.NewTimer(d)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-changed:
			quiet.Reset(d)
		case <-quiet.C:
			return true
		}
	}
}

// reload reads the configuration and applies it, or keeps the running one
// (an ERROR log and a failure count) if it cannot be read or is invalid.
func (r *reloader) reload() error {
	err := r.apply()
	r.tel.ConfigReloaded(err == nil, time.Now())
	if err != nil {
		r.log.Error("config reload failed; the running configuration stays in force", "file", r.path, "error", err)
	}
	return err
}

// apply builds everything the new configuration needs before it swaps
// anything in: a refused configuration changes nothing.
func (r *reloader) apply() error {
	next, err := r.loadStable()
	if err != nil {
		return err
	}
	applied, restartOnly := splitReloadable(changedKeys(r.running, next))
	pol, err := policy.New(next.Policy, r.cmds)
	if err != nil {
		return err
	}
	if err := r.protect(next, pol); err != nil { // a reload must not leave a public listener without authentication
		return err
	}
	var grd *guard.Guard // nil: the guard settings did not change, keep its tables
	if slices.ContainsFunc(applied, func(k string) bool { return strings.HasPrefix(k, "guard.") }) {
		if grd, err = guard.New(next.Guard, r.cmds); err != nil {
			return err
		}
	}
	r.swap(next, pol, grd)
	r.report(next, pol, applied, restartOnly)
	return nil
}

// swap puts the new policy (always: password files may have changed
// without the config) and guard in force.
func (r *reloader) swap(next Config, pol *policy.Policy, grd *guard.Guard) {
	if lowered := loweredProtection(r.running, next); len(lowered) > 0 {
		r.log.Warn("config reload lowers protection", "changes", lowered)
	}
	if grd != nil {
		r.srv.SetGuard(grd)
	}
	r.srv.SetPolicy(pol)
	r.running.Policy, r.running.Guard = next.Policy, next.Guard
	r.publish()
}

// report logs what was applied and, separately, what changed but was not.
func (r *reloader) report(next Config, pol *policy.Policy, applied, restartOnly []string) {
	r.log.Info("config reloaded", "applied", applied, "users", len(pol.ACLUsers()), "mode", next.Policy.Mode)
	if len(restartOnly) > 0 {
		r.log.Warn("config keys changed but NOT applied: they take effect at the next restart", "keys", restartOnly)
	}
}

// loadStable loads the configuration, making sure the file did not change
// while it was read (the next file event reloads again).
func (r *reloader) loadStable() (Config, error) {
	before, _ := readIfSet(r.path)
	next, err := r.load()
	if err != nil {
		return next, err
	}
	if after, _ := readIfSet(r.path); !bytes.Equal(before, after) {
		return next, errors.New("the file changed while it was being read")
	}
	return next, nil
}

func readIfSet(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}

// changedKeys lists the keys (dotted, as in the file) whose values differ.
func changedKeys(old, next Config) []string {
	a, b := map[string]any{}, map[string]any{}
	flattenConfig(reflect.ValueOf(old), "", a)
	flattenConfig(reflect.ValueOf(next), "", b)
	var keys []string
	for k, v := range a {
		if !reflect.DeepEqual(v, b[k]) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// flattenConfig records each leaf of a config struct under its dotted key.
func flattenConfig(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			flattenConfig(f, prefix+name+".", out)
		} else {
			out[prefix+name] = f.Interface()
		}
	}
}

// splitReloadable separates the keys a reload applies from restart-only ones.
func splitReloadable(keys []string) (applied, restartOnly []string) {
	for _, k := range keys {
		if slices.ContainsFunc(reloadableSections, func(p string) bool { return strings.HasPrefix(k, p) }) {
			applied = append(applied, k)
		} else {
			restartOnly = append(restartOnly, k)
		}
	}
	return applied, restartOnly
}
