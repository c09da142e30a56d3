package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/redistest"
)

func TestInfoAnswersRespguardSectionWhileRedisIsDown(t *testing.T) {
	rs := redistest.Start(t)
	fp := startFaultProxy(t, rs, rs.Addr, func(_ *Config, p *pool.Config) { p.DialTimeout = time.Second })
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		c := fp.client(t, proto)
		if info := c.Info(ctx).Val(); !strings.Contains(info, "respguard_upstream_up:1") || !strings.Contains(info, "redis_version:") {
			t.Fatalf("RESP%d INFO while up:\n%s", proto, info)
		}
	}
	rs.Stop()
	for _, proto := range []int{2, 3} {
		c := fp.client(t, proto)
		info, err := c.Info(ctx).Result()
		if err != nil {
			t.Fatalf("RESP%d INFO while Redis is down: %v", proto, err)
		}
		for _, want := range []string{"# Respguard", "respguard_connected_clients:", "respguard_upstream_up:0", "respguard_upstream_error:"} {
			if !strings.Contains(info, want) {
				t.Errorf("RESP%d INFO while down lacks %q:\n%s", proto, want, info)
			}
		}
		if err := c.Info(ctx, "memory").Err(); err == nil || !strings.Contains(err.Error(), "upstream unavailable") {
			t.Errorf("RESP%d INFO memory while down = %v, want the unavailable error", proto, err)
		}
	}
}
