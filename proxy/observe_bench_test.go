package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/telemetry"
)

// discardSpans drops spans; the batch processor in front of it is the
// production set-up.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// newObservedSession returns a session whose server has the default
// guardrails and telemetry (metrics, slow log) with 1% of commands traced.
func newObservedSession(tb testing.TB) *session {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel, err := telemetry.New(context.Background(), telemetry.Config{Traces: telemetry.TracesConfig{SampleRatio: new(0.01)}},
		telemetry.Options{TracerProvider: tp})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	g, err := guard.New(guard.Config{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &Server{tel: tel}
	srv.guard.Store(g)
	srv.SetUpstreamAddress("10.0.0.1:6379")
	return &session{srv: srv, addr: "10.0.0.7:51234"}
}

// getSlot is a completed GET of key; see startedAgo.
func getSlot(key []byte) *slot {
	return &slot{
		done: true, started: true, stmt: append([]byte("GET "), key...), key: key, elems: -1, size: 100,
		slotMeta: slotMeta{name: "get", user: "app", decision: decisionAllowed, upstream: true},
	}
}

// startedAgo dates sl's parse 200µs before now and its reply 50µs before.
func startedAgo(sl *slot, now time.Time) {
	sl.start, sl.replyAt = now.Add(-200*time.Microsecond), now.Add(-50*time.Microsecond)
}

// BenchmarkSlotDone measures the per-command observation of a completed
// reply: the guard's big- and hot-key detectors and telemetry (metrics,
// slow-log check, 1% of commands traced). Each iteration also reads the
// clock once, as the session does when it parses a command.
func BenchmarkSlotDone(b *testing.B) {
	for _, keys := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("GET over %d keys", keys), func(b *testing.B) {
			s := newObservedSession(b)
			slots := make([]*slot, keys)
			for i := range slots {
				slots[i] = getSlot(fmt.Appendf(nil, "key:%d", i))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sl := slots[i%keys]
				startedAgo(sl, time.Now())
				s.slotDone(sl)
				i++
			}
		})
	}
}
