package sentinel

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"

	tidwall "github.com/tidwall/resp"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Addresses: []string{"10.0.0.1:26379"}, MasterName: "m"}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"a sentinel and a master name are enough", func(*Config) {}, ""},
		{"no sentinel is refused", func(c *Config) { c.Addresses = nil }, "upstream.addresses: at least one"},
		{"an address without a port is refused", func(c *Config) { c.Addresses = []string{"a:1", "b"} }, "upstream.addresses[1]"},
		{"a missing master name is refused", func(c *Config) { c.MasterName = "" }, "upstream.sentinel.master_name"},
		{"a negative dial timeout is refused", func(c *Config) { c.DialTimeout = -1 }, "upstream.sentinel.dial_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTLSNamesEachSentinelUnlessAServerNameIsSet(t *testing.T) {
	c := Config{TLS: &tls.Config{}}
	if got := c.tlsFor("10.0.0.7:26379").ServerName; got != "10.0.0.7" {
		t.Fatalf("ServerName = %q, want the sentinel's host", got)
	}
	if c.TLS.ServerName != "" {
		t.Fatal("the shared TLS config was modified")
	}
	c.TLS.ServerName = "sentinel.internal"
	if got := c.tlsFor("10.0.0.7:26379").ServerName; got != "sentinel.internal" {
		t.Fatalf("ServerName = %q, want the configured one", got)
	}
	if (Config{}).tlsFor("10.0.0.7:26379") != nil {
		t.Fatal("TLS without a TLS config")
	}
}

func TestSwitchMessages(t *testing.T) {
	msg := func(parts ...string) tidwall.Value {
		vals := make([]tidwall.Value, len(parts))
		for i, p := range parts {
			vals[i] = tidwall.StringValue(p)
		}
		return tidwall.ArrayValue(vals)
	}
	for _, tc := range []struct {
		name string
		v    tidwall.Value
		hint string
	}{
		{"a switch of our master is a hint", msg("message", "+switch-master", "m 10.0.0.1 6379 10.0.0.2 6380"), "10.0.0.2:6380"},
		{"a switch of another master is ignored", msg("message", "+switch-master", "other 10.0.0.1 6379 10.0.0.2 6380"), ""},
		{"a malformed switch is ignored", msg("message", "+switch-master", "m 10.0.0.2"), ""},
		{"a PING reply is ignored", msg("pong", ""), ""},
		{"a non-array is ignored", tidwall.StringValue("OK"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Watcher{cfg: Config{MasterName: "m"}, log: slog.New(slog.DiscardHandler),
				recheck: make(chan struct{}, 1), hinted: make(chan struct{}, 1)}
			w.handle(tc.v)
			if got := w.takeHint(); got != tc.hint {
				t.Fatalf("hint = %q, want %q", got, tc.hint)
			}
			if asked := len(w.recheck) == 1; asked != (tc.hint != "") {
				t.Fatalf("re-check asked = %v", asked)
			}
		})
	}
}
