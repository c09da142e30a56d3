package telemetry

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// errorList collects instrument-creation errors so constructors can create
// many instruments in a row and check once.
type errorList struct{ err error }

func (e *errorList) add(err error) { e.err = errors.Join(e.err, err) }

func (e *errorList) gauge(g metric.Int64ObservableGauge, err error) metric.Int64ObservableGauge {
	e.add(err)
	return g
}

func (e *errorList) floatGauge(g metric.Float64ObservableGauge, err error) metric.Float64ObservableGauge {
	e.add(err)
	return g
}

func (e *errorList) counter(c metric.Int64ObservableCounter, err error) metric.Int64ObservableCounter {
	e.add(err)
	return c
}

func (e *errorList) floatCounter(c metric.Float64ObservableCounter, err error) metric.Float64ObservableCounter {
	e.add(err)
	return c
}
