package guard

import (
	"strings"
	"testing"
	"time"
)

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"an unknown unlink mode", Config{Unlink: UnlinkConfig{Mode: "sometimes"}}, `guard.unlink.mode: "sometimes" is not one of always, large, off`},
		{"negative min_elements", Config{Unlink: UnlinkConfig{MinElements: -1}}, "guard.unlink.min_elements: -1 must not be negative"},
		{"negative min_bytes", Config{Unlink: UnlinkConfig{MinBytes: -1}}, "guard.unlink.min_bytes: -1 must not be negative"},
		{"negative max_elements", Config{MaxElements: -5}, "guard.max_elements: -5 must not be negative"},
		{"an unknown oversize mode", Config{Oversize: "warn"}, `guard.oversize: "warn" is not one of reject, audit, off`},
		{"a huge top_k", Config{TopK: 1 << 20}, "guard.top_k: 1048576 is outside 0..10000"},
		{"an empty stream pattern", Config{StreamMaxlen: []StreamMaxlen{{Maxlen: 5}}}, "guard.stream_maxlen[0].pattern: empty pattern"},
		{"a zero maxlen", Config{StreamMaxlen: []StreamMaxlen{{Pattern: "s:*"}}}, "guard.stream_maxlen[0].maxlen: 0 must be positive"},
		{"a require_ttl pattern with CRLF", Config{RequireTTL: []string{"ok:*", "a\r\nb"}}, "guard.require_ttl[1]: pattern contains CR or LF"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
			if _, err := New(tt.cfg, nil); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	t.Run("every problem is reported at once", func(t *testing.T) {
		err := (&Config{Oversize: "x", MaxElements: -1}).Validate()
		if err == nil || strings.Count(err.Error(), "\n") != 1 {
			t.Fatalf("Validate() = %v", err)
		}
	})
}

func TestZeroConfigMeansDefaults(t *testing.T) {
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Fatal(err)
	}
	got := newGuard(t, zero).Config()
	want := Config{
		Unlink:      UnlinkConfig{Mode: UnlinkLarge, MinElements: 128, MinBytes: 1 << 20},
		MaxElements: 10000, Oversize: OversizeReject, SizeCacheTTL: time.Second, TopK: 50,
	}
	if got.Unlink != want.Unlink || got.MaxElements != want.MaxElements || got.Oversize != want.Oversize ||
		got.SizeCacheTTL != want.SizeCacheTTL || got.TopK != want.TopK || got.FlushAsync {
		t.Fatalf("defaults = %+v", got)
	}
}
