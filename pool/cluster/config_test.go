package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if len(c.Seeds) != 1 || c.Seeds[0] != "127.0.0.1:6379" || c.RefreshInterval != DefaultRefreshInterval || c.ReadFrom != ReadPrimary {
		t.Fatalf("defaults: %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config invalid: %v", err)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		key  string
	}{
		{"a seed without a port", Config{Seeds: []string{"10.0.0.1:7000", "redis"}}, "upstream.addresses"},
		{"an unknown read_from", Config{ReadFrom: "nearest"}, "upstream.read_from"},
		{"a negative refresh interval", Config{RefreshInterval: -time.Second}, "upstream.refresh_interval"},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.key)
			}
		})
	}
}
