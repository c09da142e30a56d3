package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

func TestMetricsShowBigKeysAndGuardCounters(t *testing.T) {
	rs := redistest.Start(t)
	listen := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	serveInProcess(t, fmt.Sprintf("listen: %s\nupstream:\n  address: %s\nadmin:\n  listen: %s\n", listen, rs.Addr, admin))
	waitListening(t, listen)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: listen, DisableIdentity: true})
	defer c.Close()
	for i := range 50 {
		c.HSet(ctx, "profile:1", fmt.Sprint("f", i), i)
	}
	if n := len(c.HGetAll(ctx, "profile:1").Val()); n != 50 {
		t.Fatalf("HGETALL returned %d fields", n)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`respguard_bigkey_elements{key="profile:1"} 50`,
		`respguard_guard_probes_total 1`,
		`respguard_command_duration_seconds_count{command="hgetall"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
