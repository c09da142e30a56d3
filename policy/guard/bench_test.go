package guard

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool/redistest"
)

// benchConfig enables every rule, so the unguarded fast path is measured
// with the most names in its filter.
var benchConfig = Config{
	FlushAsync:   true,
	StreamMaxlen: []StreamMaxlen{{Pattern: "events:*", Maxlen: 1000}},
	RequireTTL:   []string{"sess:*"},
}

func benchPlan(b *testing.B, g *Guard, line string, want Action) {
	args := cmd(line)
	dst := make([][]byte, 0, 16)
	if p := g.Plan(args, dst); p.Action != want {
		b.Fatalf("Plan(%s) = %v, want %v", line, p.Action, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Plan(args, dst[:0])
	}
}

func BenchmarkPlan(b *testing.B) {
	g := newGuard(b, benchConfig)
	g.sizes.ttl = 1 << 62                        // keep the cached sizes for the whole benchmark
	g.Observe("hlen", []byte("user:42"), 20, 4)  // cached small hash
	g.Observe("hlen", []byte("user:43"), 1e6, 4) // cached big hash
	b.Run("GET unguarded", func(b *testing.B) { benchPlan(b, g, "GET user:42", Pass) })
	b.Run("HSET unguarded", func(b *testing.B) { benchPlan(b, g, "HSET user:42 f v", Pass) })
	b.Run("SET with EX under require_ttl", func(b *testing.B) { benchPlan(b, g, "SET sess:1 v EX 10", Pass) })
	b.Run("LRANGE bounded by its arguments", func(b *testing.B) { benchPlan(b, g, "LRANGE l 0 99", Pass) })
	b.Run("HGETALL with a cached small size", func(b *testing.B) { benchPlan(b, g, "HGETALL user:42", Pass) })
	b.Run("HGETALL with a cached big size", func(b *testing.B) { benchPlan(b, g, "HGETALL user:43", Reject) })
	b.Run("HGETALL uncached", func(b *testing.B) { benchPlan(b, g, "HGETALL user:44", Probe) })
	b.Run("DEL rewrite to script", func(b *testing.B) { benchPlan(b, g, "DEL user:42", Rewrite) })
	b.Run("DEL of 3 keys", func(b *testing.B) { benchPlan(b, g, "DEL a b c", Rewrite) })
	ga := newGuard(b, Config{Unlink: UnlinkConfig{Mode: UnlinkAlways}})
	b.Run("DEL rewrite to UNLINK", func(b *testing.B) { benchPlan(b, ga, "DEL user:42", Rewrite) })
}

func BenchmarkObserve(b *testing.B) {
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user:%d", i)
	}
	b.Run("GET reply", func(b *testing.B) {
		g := newGuard(b, Config{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			g.Observe("get", keys[i%len(keys)], -1, 100)
			i++
		}
	})
	b.Run("GET reply one key", func(b *testing.B) {
		g := newGuard(b, Config{})
		b.ReportAllocs()
		for b.Loop() {
			g.Observe("get", keys[0], -1, 100)
		}
	})
	b.Run("GET reply parallel", func(b *testing.B) {
		g := newGuard(b, Config{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				g.Observe("get", keys[i%len(keys)], -1, 100)
				i++
			}
		})
	})
}

// BenchmarkRedisDel measures a small-key DEL against a real redis-server:
// each iteration is one pipelined round trip "SET k v; <delete k>", so the
// difference between the variants is the cost of the DEL rewrite. The
// server-side time per delete call, from INFO commandstats, is reported as
// redis-ns/op.
func BenchmarkRedisDel(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	large := newGuard(b, Config{})
	always := newGuard(b, Config{Unlink: UnlinkConfig{Mode: UnlinkAlways}})
	variants := []struct {
		name, stat string
		args       [][]byte
	}{
		{"plain DEL", "del", cmd("DEL k")},
		{"mode always UNLINK", "unlink", always.Plan(cmd("DEL k"), nil).Args},
		{"mode large EVAL script", "eval", large.Plan(cmd("DEL k"), nil).Args},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			args := make([]any, len(v.args))
			for i, a := range v.args {
				args[i] = string(a)
			}
			c.ConfigResetStat(ctx)
			for b.Loop() {
				pipe := c.Pipeline()
				pipe.Set(ctx, "k", "v", 0)
				del := pipe.Do(ctx, args...)
				if _, err := pipe.Exec(ctx); err != nil || del.Val() != int64(1) {
					b.Fatalf("%v %v", del.Val(), err)
				}
			}
			st := commandStats(b, ctx, c)[v.stat]
			b.ReportMetric(float64(st.usec)*1000/float64(max(st.calls, 1)), "redis-ns/op")
		})
	}
}
