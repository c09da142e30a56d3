package main

import (
	"strings"
	"testing"
)

func TestSettingsShowValuesNotPointers(t *testing.T) {
	_, cfg, err := load(newFlags(), []string{"--config", writeConfig(t, "telemetry:\n  traces:\n    sample_ratio: 0.25\n")}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings(cfg) {
		if strings.HasPrefix(s.Value, "0x") || strings.Contains(s.Value, "&") {
			t.Errorf("%s = %s: an address, not the value", s.Key, s.Value)
		}
		if s.Key == "telemetry.traces.sample_ratio" && s.Value != "0.25" {
			t.Errorf("%s = %s, want 0.25", s.Key, s.Value)
		}
	}
	var unset Config
	for _, s := range settings(unset) {
		if s.Key == "telemetry.traces.sample_ratio" && s.Value != "" {
			t.Errorf("an unset %s = %q, want empty", s.Key, s.Value)
		}
	}
}
