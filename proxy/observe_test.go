package proxy

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/respguard/respguard/pool/redistest"
	"github.com/respguard/respguard/telemetry"
)

func TestEveryCommandReachesTelemetry(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{
		Slowlog: telemetry.SlowlogConfig{Threshold: 1, MaxLen: 100}, // every command is "slow"
	}, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	tp := startProxyWith(t, redistest.Start(t), nil, Options{Telemetry: tel})
	rc := tp.raw(t)
	rc.send("SET user:1 alice\r\nHSET user:1 f v\r\nCLIENT SETNAME w1\r\n")
	for _, want := range []string{"+OK", "-WRONGTYPE Operation against a key holding the wrong kind of value", "+OK"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	waitFor(t, func() bool { return len(tel.Slowlog()) >= 3 })
	entries := tel.Slowlog() // newest first
	want := []struct{ command, statement, errCode string }{
		{"client|setname", "", ""},
		{"hset", "HSET user:1 ? ?", "WRONGTYPE"},
		{"set", "SET user:1 ?", ""},
	}
	for i, w := range want {
		e := entries[i]
		if e.Command != w.command && !(i == 0 && e.Command == "client") {
			t.Errorf("entry %d command = %q, want %q", i, e.Command, w.command)
		}
		if w.statement != "" && e.Statement != w.statement {
			t.Errorf("entry %d statement = %q, want %q", i, e.Statement, w.statement)
		}
		if e.Error != w.errCode || e.User != "default" || e.ClientAddr == "" {
			t.Errorf("entry %d = %+v", i, e)
		}
	}
	if set, local := entries[2], entries[0]; set.Upstream <= 0 || set.Upstream > set.Duration || local.Upstream != 0 {
		t.Errorf("upstream time: SET %v of %v, CLIENT SETNAME (local) %v", set.Upstream, set.Duration, local.Upstream)
	}
}

func TestExecSpanParentsTheQueuedCommands(t *testing.T) {
	tel, exporter := tracedTelemetry(t)
	proxy := startProxyWith(t, redistest.Start(t), nil, Options{Telemetry: tel})
	rc := proxy.raw(t)
	rc.send("MULTI\r\nSET tx:1 a\r\nINCR tx:n\r\nEXEC\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "*2", "+OK", ":1"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	waitFor(t, func() bool {
		for _, s := range exporter.GetSpans() {
			if s.Name == "EXEC" {
				return true
			}
		}
		return false
	})
	spans := exporter.GetSpans()
	var execID string
	for _, s := range spans {
		if s.Name == "EXEC" {
			execID = s.SpanContext.SpanID().String()
		}
	}
	children := 0
	for _, s := range spans {
		if s.Parent.SpanID().String() == execID && (s.Name == "SET" || s.Name == "INCR") {
			children++
		}
	}
	if children != 2 {
		t.Fatalf("EXEC has %d child spans (SET, INCR), want 2; spans: %d", children, len(spans))
	}
}

func TestSpansNameTheCurrentUpstream(t *testing.T) {
	tel, exporter := tracedTelemetry(t)
	proxy := startProxyWith(t, redistest.Start(t), nil, Options{Telemetry: tel})
	rc := proxy.raw(t)
	serverAddr := func(name string) string {
		t.Helper()
		waitFor(t, func() bool {
			for _, s := range exporter.GetSpans() {
				if s.Name == name {
					return true
				}
			}
			return false
		})
		for _, s := range exporter.GetSpans() {
			if s.Name != name {
				continue
			}
			for _, a := range s.Attributes {
				if a.Key == "server.address" {
					return a.Value.Emit() + ":" + fmt.Sprint(portOf(s.Attributes))
				}
			}
		}
		return ""
	}
	rc.send("PING\r\n")
	rc.line()
	if got := serverAddr("PING"); got != proxy.Redis.Addr {
		t.Errorf("span names upstream %q, want %q", got, proxy.Redis.Addr)
	}
	proxy.Server.SetUpstreamAddress("10.1.2.3:6390") // as after a Sentinel failover
	rc.send("ECHO x\r\n")
	rc.line()
	rc.line()
	if got := serverAddr("ECHO"); got != "10.1.2.3:6390" {
		t.Errorf("after the change the span names %q, want 10.1.2.3:6390", got)
	}
}

func portOf(attrs []attribute.KeyValue) int64 {
	for _, a := range attrs {
		if a.Key == "server.port" {
			return a.Value.AsInt64()
		}
	}
	return 0
}

// tracedTelemetry is telemetry that exports every span to the returned
// in-memory exporter.
func tracedTelemetry(t *testing.T) (*telemetry.Telemetry, *tracetest.InMemoryExporter) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tel, err := telemetry.New(context.Background(), telemetry.Config{
		Traces: telemetry.TracesConfig{SampleRatio: new(1.0)},
	}, telemetry.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel, exporter
}
