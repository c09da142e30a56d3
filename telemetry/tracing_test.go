package telemetry

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func TestSpanCarriesRedisSemanticConventions(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(1.0)}})
	c := command("set", 3*time.Millisecond)
	c.Args, c.KeyIndexes = args("set", "user:1", "secret"), []int{1}
	c.Decision, c.ErrPrefix = "rewritten", "OOM"
	tel.CommandDone(c)

	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	want := map[string]string{
		"db.system.name": "redis", "db.operation.name": "SET", "db.namespace": "2",
		"db.query.text": "SET user:1 ?", "server.address": "redis.internal", "server.port": "6379",
		"network.peer.address": "10.0.0.7", "network.peer.port": "51234",
		"respguard.user": "app", "respguard.decision": "rewritten",
		"error.type": "OOM", "db.response.status_code": "OOM",
	}
	got := attrMap(s.Attributes)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, got[k], v)
		}
	}
	if s.Name != "SET" || s.SpanKind != trace.SpanKindClient || !s.StartTime.Equal(c.Start) || !s.EndTime.Equal(c.Done) {
		t.Errorf("span %q kind %v from %v to %v", s.Name, s.SpanKind, s.StartTime, s.EndTime)
	}
	if s.Status.Code != codes.Error || s.Status.Description != "OOM" {
		t.Errorf("status = %+v", s.Status)
	}
	if s.Parent.IsValid() {
		t.Error("a command span has a parent")
	}
}

func TestRatioZeroStillTracesSlowCommands(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(0.0), SlowThreshold: 5 * time.Millisecond}})
	for range 100 {
		tel.CommandDone(command("get", time.Millisecond))
	}
	tel.CommandDone(command("debug", 60*time.Millisecond)) // e.g. DEBUG SLEEP 0.06
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "DEBUG" {
		t.Fatalf("exported %d spans (%v), want only the slow DEBUG", len(spans), spans)
	}
}

func TestSlowCommandsAreTracedAtMostABudgetPerSecond(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(0.0), SlowThreshold: 5 * time.Millisecond}})
	for range 3 * slowSpansPerSecond { // a saturated proxy: every command queued past the threshold
		tel.CommandDone(command("get", 50*time.Millisecond))
	}
	if n := len(exp.GetSpans()); n != slowSpansPerSecond {
		t.Fatalf("%d spans for %d slow commands in one second, want %d", n, 3*slowSpansPerSecond, slowSpansPerSecond)
	}
	next := command("debug", 50*time.Millisecond)
	next.Start = next.Start.Add(time.Second)
	next.Done = next.Done.Add(time.Second)
	tel.CommandDone(next)
	if spans := exp.GetSpans(); len(spans) != slowSpansPerSecond+1 || spans[len(spans)-1].Name != "DEBUG" {
		t.Fatalf("the next second's slow command was not traced (%d spans)", len(spans))
	}
}

func TestSpanBudgetIsSharedByConcurrentCallers(t *testing.T) {
	b := &spanBudget{max: 50}
	done := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var taken atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if b.take(done) {
					taken.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := taken.Load(); n != 50 {
		t.Fatalf("%d spans taken from a budget of 50", n)
	}
	if b.take(done.Add(-time.Second)) {
		t.Error("a command finished in an earlier second took from a spent budget")
	}
}

func TestRatioOneTracesEveryCommandAndNegativeSlowThresholdDisablesTheRule(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(1.0)}})
	for range 10 {
		tel.CommandDone(command("get", time.Millisecond))
	}
	if n := len(exp.GetSpans()); n != 10 {
		t.Fatalf("%d spans, want 10", n)
	}
	tel2, exp2 := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(0.0), SlowThreshold: -1}})
	tel2.CommandDone(command("debug", time.Second))
	if n := len(exp2.GetSpans()); n != 0 {
		t.Fatalf("%d spans with the slow rule disabled", n)
	}
}

func TestRatioSamplesAboutThatFraction(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(0.1)}})
	const n = 20000
	for range n {
		tel.CommandDone(command("get", time.Microsecond))
	}
	got := len(exp.GetSpans())
	if got < n/10*8/10 || got > n/10*12/10 { // ±20% of 2000: > 8 sigma
		t.Fatalf("sampled %d of %d at ratio 0.1", got, n)
	}
}

func TestExecSpanParentsTheQueuedCommands(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(1.0)}})
	exec := command("exec", 2*time.Millisecond)
	exec.Queued = []Command{
		{Name: "incr", Args: args("incr", "counter"), KeyIndexes: []int{1}},
		{Name: "get", Statement: "GET other", ErrPrefix: "WRONGTYPE", Start: exec.Start, Done: exec.Start.Add(time.Millisecond)},
	}
	tel.CommandDone(exec)
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want EXEC and 2 children", len(spans))
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	parent := byName["EXEC"]
	if got := attrMap(parent.Attributes)["db.operation.batch.size"]; got != "2" {
		t.Errorf("EXEC batch size = %q", got)
	}
	for _, name := range []string{"INCR", "GET"} {
		child := byName[name]
		if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
			t.Errorf("%s is not a child of EXEC", name)
		}
	}
	if got := attrMap(byName["INCR"].Attributes)["db.query.text"]; got != "INCR counter" {
		t.Errorf("INCR statement = %q", got)
	}
	if !byName["INCR"].EndTime.Equal(exec.Done) || byName["GET"].Status.Code != codes.Error {
		t.Errorf("children: %+v", byName)
	}
	if n, _ := metricValue(scrape(t, tel), "respguard_command_duration_seconds", "command", "incr"); n != 0 {
		t.Errorf("queued commands were counted again in metrics")
	}
}

func TestStatementModeNoneOmitsQueryText(t *testing.T) {
	tel, exp := newTracedTelemetry(t, Config{Traces: TracesConfig{SampleRatio: new(1.0), Statement: StatementNone}})
	if tel.StatementWanted() {
		t.Error("StatementWanted with mode none")
	}
	c := command("get", time.Millisecond)
	c.Statement = "GET user:1"
	tel.CommandDone(c)
	if _, ok := attrMap(exp.GetSpans()[0].Attributes)["db.query.text"]; ok {
		t.Fatal("db.query.text present with statement none")
	}
}

func TestStatementWanted(t *testing.T) {
	if tel := newTestTelemetry(t, Config{}, Options{}); !tel.StatementWanted() {
		t.Error("the default slow log wants statements")
	}
	if tel := newTestTelemetry(t, Config{Slowlog: SlowlogConfig{Threshold: -1}}, Options{}); tel.StatementWanted() {
		t.Error("with tracing and the slow log off, nothing wants statements")
	}
}

func TestEnvironmentSamplerAlwaysOffDisablesSpans(t *testing.T) {
	t.Setenv(envTracesSampler, "always_off")
	tel, exp := newTracedTelemetry(t, Config{})
	tel.CommandDone(command("debug", time.Second))
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans with OTEL_TRACES_SAMPLER=always_off", n)
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint that decodes the protobuf
// requests and hands each one to a channel.
type otlpReceiver struct {
	*httptest.Server
	requests chan *coltracepb.ExportTraceServiceRequest
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{requests: make(chan *coltracepb.ExportTraceServiceRequest, 16)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req2, err := decodeExportRequest(req)
		if err != nil {
			t.Errorf("OTLP receiver: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.requests <- req2
		body, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	}))
	t.Cleanup(r.Close)
	return r
}

func decodeExportRequest(req *http.Request) (*coltracepb.ExportTraceServiceRequest, error) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, err
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var out coltracepb.ExportTraceServiceRequest
	return &out, proto.Unmarshal(raw, &out)
}

func TestOTLPHTTPExporterDeliversSpansToAReceiver(t *testing.T) {
	recv := newOTLPReceiver(t)
	t.Setenv(envTracesExporter, "otlp")
	t.Setenv(envEndpoint, recv.URL) // the exporter reads it: env works as in any SDK
	t.Setenv("OTEL_SERVICE_NAME", "respguard-test")
	tel, err := New(context.Background(), Config{Traces: TracesConfig{SampleRatio: new(0.0)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := command("keys", time.Second)
	c.Args = args("keys", "user:*")
	tel.CommandDone(c)
	tel.CommandDone(command("get", time.Microsecond))          // dropped by the ratio
	if err := tel.Shutdown(context.Background()); err != nil { // flushes the batch
		t.Fatalf("Shutdown: %v", err)
	}
	req := <-recv.requests
	rs := req.GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
		t.Fatalf("request = %v", req)
	}
	span := rs[0].GetScopeSpans()[0].GetSpans()[0]
	attrs := map[string]string{}
	for _, kv := range span.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if span.GetName() != "KEYS" || attrs["db.system.name"] != "redis" || attrs["db.query.text"] != "KEYS ?" || attrs["respguard.user"] != "app" {
		t.Fatalf("span %q attrs %v", span.GetName(), attrs)
	}
	if d := time.Duration(span.GetEndTimeUnixNano() - span.GetStartTimeUnixNano()); d != time.Second {
		t.Fatalf("span lasted %v, want the command's 1s", d)
	}
	var service string
	for _, kv := range rs[0].GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" {
			service = kv.GetValue().GetStringValue()
		}
	}
	if service != "respguard-test" {
		t.Fatalf("service.name = %q", service)
	}
	select {
	case extra := <-recv.requests:
		t.Fatalf("unexpected second export: %v", extra)
	default:
	}
}
