package pool

import (
	"context"
	"testing"

	"github.com/respguard/respguard/pool/redistest"
)

func TestConnectionSetUpReadsRedisLimits(t *testing.T) {
	srv := redistest.Start(t, "--proto-max-bulk-len", "1mb", "--client-query-buffer-limit", "2mb", "--databases", "4",
		"--user", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config")
	ctx := context.Background()
	t.Run("Dial, the pool and Probe read proto-max-bulk-len, client-query-buffer-limit and databases, in both protocols", func(t *testing.T) {
		want := Limits{MaxBulkLen: 1 << 20, QueryBufferLimit: 2 << 20, Databases: 4}
		for _, proto := range []int{2, 3} {
			p, err := Dial(ctx, Config{Address: srv.Addr}, 1, proto)
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
			if p.Limits() != want {
				t.Fatalf("RESP%d: Dial read %+v, want %+v", proto, p.Limits(), want)
			}
		}
		pl, err := New(Config{Address: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		defer pl.Close()
		if pl.Limits() != nil {
			t.Fatal("limits known before any connection was set up")
		}
		if _, err := pl.Shared(ctx, 0, 2, 0); err != nil {
			t.Fatal(err)
		}
		if l := pl.Limits(); l == nil || *l != want {
			t.Fatalf("pool limits %+v, want %+v", l, want)
		}
		info, err := NewControl(Config{Address: srv.Addr}).Probe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Limits != want || info.Databases != 4 {
			t.Fatalf("probe read %+v (databases %d), want %+v", info.Limits, info.Databases, want)
		}
	})
	t.Run("a user without CONFIG still connects, with the limits unknown", func(t *testing.T) {
		cfg := Config{Address: srv.Addr, Username: "noconfig", Password: "pw"}
		p, err := Dial(ctx, cfg, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		if p.Limits() != (Limits{}) {
			t.Fatalf("read %+v through a refused CONFIG GET", p.Limits())
		}
		info, err := NewControl(cfg).Probe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Limits != (Limits{}) || info.Databases != 16 {
			t.Fatalf("probe read %+v (databases %d) through a refused CONFIG GET", info.Limits, info.Databases)
		}
	})
}
