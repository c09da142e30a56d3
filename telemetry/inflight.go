package telemetry

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"
)

// ObserveInFlight makes respguard_commands_in_flight (and the INFO field
// respguard_commands_in_flight) read f at scrape time: the commands read
// from clients whose replies have not been written yet, blocked commands
// included. f must be safe to call from any goroutine; nil stops reporting.
// A later call replaces f.
func (t *Telemetry) ObserveInFlight(f func() int64) { t.inFlight.set(f) }

// ObserveParked makes respguard_clients_parked read f at scrape time: the
// client connections held without a goroutine (client.park_after). f must
// be safe to call from any goroutine; nil stops reporting. A later call
// replaces f.
func (t *Telemetry) ObserveParked(f func() int64) { t.parked.set(f) }

func (t *Telemetry) commandsInFlight() (int64, bool) { return t.inFlight.read() }

// gaugeSource is a gauge whose value another package owns: a function read
// at scrape time.
type gaugeSource struct{ f atomic.Pointer[func() int64] }

func (g *gaugeSource) set(f func() int64) {
	if f == nil {
		g.f.Store(nil)
		return
	}
	g.f.Store(&f)
}

// read returns the value, or false when no function is set.
func (g *gaugeSource) read() (int64, bool) {
	f := g.f.Load()
	if f == nil {
		return 0, false
	}
	return (*f)(), true
}

// register creates the gauge name, observed by its own callback.
func (g *gaugeSource) register(m metric.Meter, errs *errorList, name, unit, desc string) {
	errs.gauge(m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if n, ok := g.read(); ok {
				o.Observe(n)
			}
			return nil
		})))
}

// newSourceGauges creates the gauges whose values the proxy owns.
func (t *Telemetry) newSourceGauges(m metric.Meter, errs *errorList) {
	t.inFlight.register(m, errs, "respguard.commands.in_flight", "{command}",
		"Commands read from clients whose replies have not been written yet (blocked commands included).")
	t.parked.register(m, errs, "respguard.clients.parked", "{connection}",
		"Client connections held without a goroutine (client.park_after): idle, resumed when they send.")
}
