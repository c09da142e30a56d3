package proxy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/pool"
)

func TestCommandsPassThrough(t *testing.T) {
	tp := startProxy(t, nil)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d client gets Redis's own replies", proto), func(t *testing.T) {
			c := tp.client(t, proto)
			ctx := ctxT(t)
			key := fmt.Sprintf("k%d", proto)
			if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if got := c.Get(ctx, key).Val(); got != "v" {
				t.Fatalf("GET = %q", got)
			}
			c.HSet(ctx, "h"+key, "a", "1", "b", "2")
			m, err := c.HGetAll(ctx, "h"+key).Result()
			if err != nil || len(m) != 2 || m["b"] != "2" {
				t.Fatalf("HGETALL = %v, %v", m, err)
			}
			if _, err := c.Get(ctx, "missing").Result(); err != redis.Nil {
				t.Fatalf("GET missing: err = %v, want redis.Nil", err)
			}
			if err := c.Do(ctx, "NOSUCHCOMMAND").Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
				t.Fatalf("unknown command error = %v", err)
			}
			f, err := c.ZIncrBy(ctx, "z"+key, 1.5, "m").Result()
			if err != nil || f != 1.5 {
				t.Fatalf("ZINCRBY = %v, %v", f, err)
			}
		})
	}
}

func TestHelloReportsUpstreamVersionAndProtocol(t *testing.T) {
	tp := startProxy(t, nil)
	c3 := tp.client(t, 3)
	ctx := ctxT(t)
	m, err := c3.Do(ctx, "HELLO", "3").Result()
	if err != nil {
		t.Fatal(err)
	}
	hello := m.(map[any]any)
	want, _ := tp.direct(t).Do(ctx, "HELLO", "3").Result()
	if hello["version"] != want.(map[any]any)["version"] || hello["proto"] != int64(3) || hello["server"] != "redis" {
		t.Fatalf("HELLO 3 = %v, want version %v proto 3", hello, want.(map[any]any)["version"])
	}
	rc := tp.raw(t)
	rc.send("HELLO 4\r\n")
	if got := rc.line(); got != "-NOPROTO unsupported protocol version" {
		t.Fatalf("HELLO 4 = %q", got)
	}
	rc.send("HELLO 2\r\n")
	if got := rc.line(); got != "*14" {
		t.Fatalf("HELLO 2 header = %q", got)
	}
}

func TestSelectIsolatesClients(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	a := tp.client(t, 2, func(o *redis.Options) { o.DB = 3 })
	b := tp.client(t, 3)
	a.Set(ctx, "same", "in-db-3", 0)
	b.Set(ctx, "same", "in-db-0", 0)
	if got := a.Get(ctx, "same").Val(); got != "in-db-3" {
		t.Fatalf("db 3 client sees %q", got)
	}
	if got := b.Get(ctx, "same").Val(); got != "in-db-0" {
		t.Fatalf("db 0 client sees %q", got)
	}
	d := tp.direct(t)
	d.Do(ctx, "SELECT", "3")
	if got, _ := tp.direct(t).Get(ctx, "same").Result(); got != "in-db-0" {
		t.Fatalf("upstream db 0 has %q", got)
	}
	rc := tp.raw(t)
	rc.send("SELECT 16\r\nSELECT x\r\nSELECT 3\r\nGET same\r\n")
	for _, want := range []string{"-ERR DB index is out of range", "-ERR value is not an integer or out of range", "+OK", "$7", "in-db-3"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestPipelineOf100kCommandsKeepsOrder(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	// go-redis reads a pipeline's replies under one deadline: 100k replies
	// under -race on a busy machine take longer than its 3 s default.
	c := tp.client(t, 2, func(o *redis.Options) { o.ReadTimeout, o.WriteTimeout = time.Minute, time.Minute })
	pipe := c.Pipeline()
	const n = 100_000
	cmds := make([]*redis.StringCmd, n)
	for i := range n {
		cmds[i] = pipe.Echo(ctx, fmt.Sprintf("token-%d", i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if want := fmt.Sprintf("token-%d", i); cmd.Val() != want {
			t.Fatalf("reply %d = %q, want %q", i, cmd.Val(), want)
		}
	}
}

func TestLargeValuesRoundTrip(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	// 64 MiB each way takes seconds under -race on a busy machine: the
	// client's own deadlines must not race that work.
	c := tp.client(t, 3, func(o *redis.Options) { o.ReadTimeout, o.WriteTimeout = time.Minute, time.Minute })
	big := strings.Repeat("0123456789abcdef", 4<<20) // 64 MiB
	if err := c.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "big").Result()
	if err != nil || got != big {
		t.Fatalf("GET big: len %d err %v", len(got), err)
	}
}

func TestInlineCommands(t *testing.T) {
	tp := startProxy(t, nil)
	rc := tp.raw(t)
	rc.send("SET greeting \"hello world\"\r\nGET greeting\r\n\r\nPING\n")
	for _, want := range []string{"+OK", "$11", "hello world", "+PONG"} {
		if got := rc.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestManyClientsShareFewUpstreamConnections(t *testing.T) {
	tp := startProxy(t, func(c *Config, p *pool.Config) { p.SharedConns = 2; p.MaxConns = 8 })
	ctx := ctxT(t)
	const clients = 1000
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	conns := make([]*redis.Client, clients)
	for i := range clients {
		// 1000 clients on two shared connections under -race on a busy
		// machine: the clients' own deadlines must not race that queue.
		conns[i] = tp.client(t, 2, func(o *redis.Options) {
			o.PoolSize, o.ReadTimeout, o.WriteTimeout = 1, time.Minute, time.Minute
		})
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("c:%d", i)
			for j := range 5 {
				val := fmt.Sprintf("%d-%d", i, j)
				if err := c.Set(ctx, key, val, 0).Err(); err != nil {
					errs <- err
					return
				}
				if got := c.Get(ctx, key).Val(); got != val {
					errs <- fmt.Errorf("client %d read %q, want %q", i, got, val)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := tp.Server.Connected(); n != clients {
		t.Fatalf("proxy has %d clients, want %d", n, clients)
	}
	direct := tp.direct(t)
	var upstream int
	// shared pipes + dedicated pool bound + the direct client itself, once
	// shared connections retired as stalled (a busy machine) have drained.
	pollUntil(t, 30*time.Second, "upstream connections back within the bound", func() bool {
		info := direct.Info(ctx, "clients").Val()
		fmt.Sscanf(info[strings.Index(info, "connected_clients:"):], "connected_clients:%d", &upstream)
		return upstream <= 2+8+1
	})
}

func TestInfoAddsRespguardSection(t *testing.T) {
	tp := startProxy(t, nil)
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		c := tp.client(t, proto)
		all := c.Info(ctx).Val()
		if !strings.Contains(all, "redis_version:") || !strings.Contains(all, "# Respguard") {
			t.Fatalf("RESP%d INFO lacks Redis's or respguard's section:\n%s", proto, all)
		}
		if mem := c.Info(ctx, "memory").Val(); strings.Contains(mem, "# Respguard") || !strings.Contains(mem, "used_memory:") {
			t.Fatalf("INFO memory = %s", mem)
		}
	}
}
