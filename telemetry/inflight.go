package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

// ObserveInFlight makes respguard_commands_in_flight (and the INFO field
// respguard_commands_in_flight) read f at scrape time: the commands read
// from clients whose replies have not been written yet, blocked commands
// included. f must be safe to call from any goroutine; nil stops reporting.
// A later call replaces f.
func (t *Telemetry) ObserveInFlight(f func() int64) {
	if f == nil {
		t.inFlight.Store(nil)
		return
	}
	t.inFlight.Store(&f)
}

func (t *Telemetry) commandsInFlight() (int64, bool) {
	f := t.inFlight.Load()
	if f == nil {
		return 0, false
	}
	return (*f)(), true
}

// newInFlightGauge creates respguard_commands_in_flight, observed by its
// own callback.
func (t *Telemetry) newInFlightGauge(m metric.Meter, errs *errorList) {
	errs.gauge(m.Int64ObservableGauge("respguard.commands.in_flight", metric.WithUnit("{command}"),
		metric.WithDescription("Commands read from clients whose replies have not been written yet (blocked commands included)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if n, ok := t.commandsInFlight(); ok {
				o.Observe(n)
			}
			return nil
		})))
}
