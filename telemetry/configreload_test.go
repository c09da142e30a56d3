package telemetry

import (
	"testing"
	"time"
)

func TestConfigReloadMetricsMove(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	start := time.Unix(1_700_000_000, 0)
	tel.ConfigLoaded(start)
	tel.ConfigReloaded(false, start.Add(time.Minute))
	tel.ConfigReloaded(true, start.Add(2*time.Minute))
	tel.ConfigReloaded(false, start.Add(3*time.Minute))
	families := scrape(t, tel)
	for _, tc := range []struct {
		result string
		want   float64
	}{{"success", 1}, {"failure", 2}} {
		if got, ok := metricValue(families, "respguard_config_reloads_total", "result", tc.result); !ok || got != tc.want {
			t.Errorf("respguard_config_reloads_total{result=%q} = %v (present %v), want %v", tc.result, got, ok, tc.want)
		}
	}
	want := float64(start.Add(2 * time.Minute).Unix())
	if got, ok := metricValue(families, "respguard_config_last_reload_success_timestamp_seconds"); !ok || got != want {
		t.Errorf("last success = %v (present %v), want %v: a failed reload must not move it", got, ok, want)
	}
}
