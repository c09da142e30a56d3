package telemetry

import "sync/atomic"

// counterID indexes Telemetry.counts: process-wide totals kept as atomics so
// the hot path and the INFO section can read them without the metric SDK.
type counterID int

const (
	countAccepted counterID = iota
	countClosed
	countRejected
	countOutputOverflow
	countAuthFailure
	countBytesIn
	countBytesOut
	countCommands
	countErrorReplies
	countDenials
	countGuardActions
	numCounters
)

// counterSpec describes how a counter is exported; name "" means it is
// exported through a labelled synchronous instrument instead (commands,
// errors, denials, guard actions) and only the INFO section reads the atomic.
type counterSpec struct {
	name, unit, desc string
}

var counterSpecs = [numCounters]counterSpec{
	countAccepted:       {"respguard.clients.accepted", "{connection}", "Client connections accepted."},
	countClosed:         {"respguard.clients.closed", "{connection}", "Client connections closed, for any reason."},
	countRejected:       {"respguard.clients.rejected", "{connection}", "Client connections refused because max clients was reached."},
	countOutputOverflow: {"respguard.clients.output_overflows", "{connection}", "Client connections closed because their output buffer limit was exceeded."},
	countAuthFailure:    {"respguard.auth.failures", "{attempt}", "Failed AUTH/HELLO authentication attempts."},
	countBytesIn:        {"respguard.client.received", "By", "Bytes read from clients."},
	countBytesOut:       {"respguard.client.sent", "By", "Bytes written to clients."},
}

// counts holds the atomics; they are independent (no invariant links them)
// and written by every session goroutine.
type counts [numCounters]atomic.Int64

// ClientAccepted counts an accepted client connection.
func (t *Telemetry) ClientAccepted() { t.counts[countAccepted].Add(1) }

// ClientClosed counts a closed client connection (call once per accepted one).
func (t *Telemetry) ClientClosed() { t.counts[countClosed].Add(1) }

// ClientRejected counts a connection refused because max clients was reached
// (not counted as accepted).
func (t *Telemetry) ClientRejected() { t.counts[countRejected].Add(1) }

// OutputOverflow counts a client closed for exceeding its output buffer limit.
func (t *Telemetry) OutputOverflow() { t.counts[countOutputOverflow].Add(1) }

// AuthFailure counts a failed authentication attempt.
func (t *Telemetry) AuthFailure() { t.counts[countAuthFailure].Add(1) }

// BytesIn counts n bytes read from a client.
func (t *Telemetry) BytesIn(n int) { t.counts[countBytesIn].Add(int64(n)) }

// BytesOut counts n bytes written to a client.
func (t *Telemetry) BytesOut(n int) { t.counts[countBytesOut].Add(int64(n)) }

func (t *Telemetry) count(id counterID) int64 { return t.counts[id].Load() }

// connected is the number of client connections open now.
func (t *Telemetry) connected() int64 { return t.count(countAccepted) - t.count(countClosed) }
