package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/respguard/respguard/policy"
	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/pool/cluster"
	"github.com/respguard/respguard/pool/redistest"
)

// startClusterProxy starts a proxy in cluster mode in front of rc.
func startClusterProxy(t testing.TB, rc *redistest.Cluster, mutate func(*cluster.Config), opts Options) *testProxy {
	t.Helper()
	ccfg := cluster.Config{Seeds: rc.Addrs()[:1], Node: pool.Config{RetryBackoff: 50 * time.Millisecond}}
	if mutate != nil {
		mutate(&ccfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := cluster.New(ctx, ccfg, nil)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	opts.Cluster = cl
	srv, err := NewServer(Config{Listen: "127.0.0.1:0"}, nil, pool.ServerInfo{Mode: "standalone"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testProxy{Addr: serveForTest(t, srv, cl.Close), Server: srv}
}

// clusterDirect is a real cluster client of rc: the oracle.
func clusterDirect(t testing.TB, rc *redistest.Cluster) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs(), DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// keysOnEveryNode returns n keys spread over the slots of every primary.
func keysOnEveryNode(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s:%d", prefix, i)
	}
	return keys
}

func TestClusterRouting(t *testing.T) {
	rc := redistest.StartCluster(t, 3, 1)
	tp := startClusterProxy(t, rc, nil, Options{})
	ctx := ctxT(t)
	direct := clusterDirect(t, rc)

	for _, proto := range []int{2, 3} {
		c := tp.client(t, proto)
		t.Run(fmt.Sprintf("RESP%d: every key-based family reaches the node that owns the key", proto), func(t *testing.T) {
			p := fmt.Sprintf("r%d", proto)
			keys := keysOnEveryNode(p+"str", 200)
			for i, k := range keys {
				if err := c.Set(ctx, k, i, 0).Err(); err != nil {
					t.Fatalf("SET %s: %v", k, err)
				}
			}
			for i, k := range keys {
				if v, err := direct.Get(ctx, k).Int(); err != nil || v != i {
					t.Fatalf("direct GET %s = %d, %v; want %d", k, v, err, i)
				}
			}
			must(t, c.HSet(ctx, p+"hash", "f", "v").Err())
			must(t, c.RPush(ctx, p+"list", "a", "b").Err())
			must(t, c.SAdd(ctx, p+"set", "m").Err())
			must(t, c.ZAdd(ctx, p+"zset", redis.Z{Score: 1, Member: "z"}).Err())
			must(t, c.XAdd(ctx, &redis.XAddArgs{Stream: p + "stream", Values: []string{"f", "v"}}).Err())
			must(t, c.PFAdd(ctx, p+"hll", "x").Err())
			must(t, c.Eval(ctx, "return redis.call('SET', KEYS[1], ARGV[1])", []string{p + "eval"}, "e").Err())
			if got := direct.HGet(ctx, p+"hash", "f").Val(); got != "v" {
				t.Errorf("hash: %q", got)
			}
			if got := direct.LRange(ctx, p+"list", 0, -1).Val(); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("list: %q", got)
			}
			if got := direct.SMembers(ctx, p+"set").Val(); !slices.Equal(got, []string{"m"}) {
				t.Errorf("set: %q", got)
			}
			if got := direct.ZScore(ctx, p+"zset", "z").Val(); got != 1 {
				t.Errorf("zset: %v", got)
			}
			if got := direct.XLen(ctx, p+"stream").Val(); got != 1 {
				t.Errorf("stream: %d", got)
			}
			if got := direct.Get(ctx, p+"eval").Val(); got != "e" {
				t.Errorf("eval: %q", got)
			}
			must(t, c.GeoAdd(ctx, p+"geo", &redis.GeoLocation{Name: "here", Longitude: 13.4, Latitude: 52.5}).Err())
			must(t, c.SetBit(ctx, p+"bits", 7, 1).Err())
			if got := direct.GeoPos(ctx, p+"geo", "here").Val(); len(got) != 1 || got[0] == nil {
				t.Errorf("geo: %v", got)
			}
			if got := direct.BitCount(ctx, p+"bits", nil).Val(); got != 1 {
				t.Errorf("bitmap: %d", got)
			}
			if got := direct.PFCount(ctx, p+"hll").Val(); got != 1 {
				t.Errorf("hyperloglog: %d", got)
			}
			if got := c.HGetAll(ctx, p+"hash").Val(); got["f"] != "v" {
				t.Errorf("HGETALL through the proxy: %v", got)
			}
		})

		t.Run(fmt.Sprintf("RESP%d: cross-slot MSET, MGET, EXISTS, TOUCH, DEL, UNLINK are split and merged in order", proto), func(t *testing.T) {
			keys := keysOnEveryNode(fmt.Sprintf("m%d", proto), 30)
			pairs := make([]any, 0, 2*len(keys))
			for i, k := range keys {
				pairs = append(pairs, k, fmt.Sprint("v", i))
			}
			must(t, c.MSet(ctx, pairs...).Err())
			query := append(slices.Clone(keys), "missing:1")
			slices.Reverse(query)
			got, err := c.MGet(ctx, query...).Result()
			must(t, err)
			for i, k := range query {
				want, _ := direct.Get(ctx, k).Result()
				if g, _ := got[i].(string); g != want {
					t.Fatalf("MGET[%d] (%s) = %v, want %q", i, k, got[i], want)
				}
			}
			if n := c.Exists(ctx, append(query, keys[0])...).Val(); n != int64(len(keys)+1) {
				t.Errorf("EXISTS = %d, want %d", n, len(keys)+1)
			}
			if n := c.Touch(ctx, query...).Val(); n != int64(len(keys)) {
				t.Errorf("TOUCH = %d, want %d", n, len(keys))
			}
			if n := c.Del(ctx, keys[:15]...).Val(); n != 15 {
				t.Errorf("DEL = %d, want 15", n)
			}
			if n := c.Unlink(ctx, keys...).Val(); n != 15 {
				t.Errorf("UNLINK = %d, want 15", n)
			}
			if n := direct.Exists(ctx, keys...).Val(); n != 0 {
				t.Errorf("%d keys survived DEL/UNLINK", n)
			}
		})
	}

	c := tp.client(t, 2)
	t.Run("other multi-key commands across slots get CROSSSLOT; hash tags keep them together", func(t *testing.T) {
		must(t, c.SAdd(ctx, "{u}a", "1").Err())
		must(t, c.SAdd(ctx, "{u}b", "2").Err())
		if got := c.SUnion(ctx, "{u}a", "{u}b").Val(); len(got) != 2 {
			t.Errorf("SUNION with a hash tag = %v", got)
		}
		err := c.SUnion(ctx, "sa", "sb").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Errorf("SUNION across slots: %v, want CROSSSLOT", err)
		}
		if err := c.MSetNX(ctx, "nx:1", 1, "nx:2", 2).Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Errorf("MSETNX across slots: %v, want CROSSSLOT", err)
		}
	})

	t.Run("keyless commands: DBSIZE sums, SCAN covers every key once, KEYS merges, PING, SELECT", func(t *testing.T) {
		var total int64
		for _, n := range rc.Primaries() {
			s, err := redistest.Do(n.Addr, "DBSIZE")
			must(t, err)
			var v int64
			fmt.Sscan(s, &v)
			total += v
		}
		if got := c.DBSize(ctx).Val(); got != total {
			t.Errorf("DBSIZE = %d, want the sum %d", got, total)
		}
		seen := map[string]int{}
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, "*", 7).Result()
			must(t, err)
			for _, k := range keys {
				seen[k]++
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		if int64(len(seen)) != total {
			t.Errorf("SCAN saw %d keys, want %d", len(seen), total)
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("SCAN returned %s %d times", k, n)
			}
		}
		if got := c.Keys(ctx, "r2str:*").Val(); len(got) != 200 {
			t.Errorf("KEYS r2str:* found %d keys, want 200", len(got))
		}
		if got := c.Ping(ctx).Val(); got != "PONG" {
			t.Errorf("PING = %q", got)
		}
		if err := c.Do(ctx, "SELECT", "1").Err(); err == nil || err.Error() != clusterSelect {
			t.Errorf("SELECT 1: %v", err)
		}
		must(t, c.Do(ctx, "SELECT", "0").Err())
		info := c.Info(ctx).Val()
		for _, want := range []string{"# Respguard", "cluster_enabled:1", "respguard_cluster_shards:3", "respguard_cluster_slots_served:16384"} {
			if !strings.Contains(info, want) {
				t.Errorf("INFO lacks %q", want)
			}
		}
	})

	t.Run("SCRIPT LOAD reaches every primary, so EVALSHA works for keys on any node", func(t *testing.T) {
		sha, err := c.ScriptLoad(ctx, "return redis.call('GET', KEYS[1])").Result()
		must(t, err)
		for i, k := range keysOnEveryNode("r2str", 10) {
			if v, err := c.EvalSha(ctx, sha, []string{k}).Int(); err != nil || v != i {
				t.Errorf("EVALSHA GET %s = %v, %v", k, v, err)
			}
		}
	})

	t.Run("transactions stay on the node of their first key; other slots get CROSSSLOT and abort", func(t *testing.T) {
		cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Ping(ctx)
			p.Set(ctx, "{tx}a", "1", 0)
			p.Incr(ctx, "{tx}b")
			return nil
		})
		must(t, err)
		if got := cmds[2].(*redis.IntCmd).Val(); got != 1 {
			t.Errorf("INCR in MULTI = %d", got)
		}
		_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{tx}a", "2", 0)
			p.Set(ctx, "{other}a", "2", 0)
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") && !strings.Contains(err.Error(), "EXECABORT") {
			t.Errorf("cross-slot transaction: %v", err)
		}
		if got := direct.Get(ctx, "{tx}a").Val(); got != "1" {
			t.Errorf("an aborted transaction ran: {tx}a = %q", got)
		}
		raw := tp.raw(t)
		raw.send("MULTI\r\nEXEC\r\n")
		if a, b := raw.line(), raw.line(); a != "+OK" || b != "*0" {
			t.Errorf("empty transaction: %q %q", a, b)
		}
	})

	t.Run("WATCH sees a change made by another client", func(t *testing.T) {
		other := tp.client(t, 2)
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			must(t, other.Set(ctx, "{w}k", "changed", 0).Err())
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "{w}k", "mine", 0)
				return nil
			})
			return err
		}, "{w}k")
		if !errors.Is(err, redis.TxFailedErr) {
			t.Errorf("WATCH conflict: %v, want TxFailedErr", err)
		}
		if got := direct.Get(ctx, "{w}k").Val(); got != "changed" {
			t.Errorf("{w}k = %q", got)
		}
	})

	t.Run("a blocking pop waits on the node that owns its key", func(t *testing.T) {
		popper := tp.client(t, 2)
		done := make(chan []string, 1)
		go func() { done <- popper.BLPop(ctx, 20*time.Second, "queue:1").Val() }()
		// Pushing through a second client; the pop is answered whenever it
		// was registered, before or after (a list waits for it either way).
		must(t, c.RPush(ctx, "queue:1", "job").Err())
		if got := <-done; !slices.Equal(got, []string{"queue:1", "job"}) {
			t.Errorf("BLPOP = %q", got)
		}
	})

	t.Run("Pub/Sub: SUBSCRIBE on one node hears PUBLISH on another; SSUBSCRIBE on the shard", func(t *testing.T) {
		sub := tp.client(t, 2).Subscribe(ctx, "news")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		for _, n := range rc.Primaries() {
			must(t, redis.NewClient(&redis.Options{Addr: n.Addr}).Publish(ctx, "news", n.Addr).Err())
		}
		for range rc.Primaries() {
			if _, err := sub.ReceiveMessage(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ssub := tp.client(t, 2).SSubscribe(ctx, "shard-news")
		defer ssub.Close()
		if _, err := ssub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		must(t, c.SPublish(ctx, "shard-news", "hello").Err())
		if m, err := ssub.ReceiveMessage(ctx); err != nil || m.Payload != "hello" {
			t.Errorf("SSUBSCRIBE message %v, %v", m, err)
		}
	})

	t.Run("with read_from replica, reads go to the replica and writes to the primary", func(t *testing.T) {
		rp := startClusterProxy(t, rc, func(c *cluster.Config) { c.ReadFrom = cluster.ReadReplica }, Options{})
		rcl := rp.client(t, 2)
		key := "replicated"
		must(t, rcl.Set(ctx, key, "v", 0).Err())
		slot := cluster.Slot([]byte(key))
		primary := redis.NewClient(&redis.Options{Addr: rc.NodeForSlot(slot).Addr})
		defer primary.Close()
		if n := primary.Do(ctx, "WAIT", "1", "5000").Val(); n != int64(1) {
			t.Fatalf("WAIT = %v: the replica did not get the write", n)
		}
		replica := rc.ReplicasForSlot(slot)[0]
		before := cmdCalls(t, replica.Addr, "get")
		if got, err := rcl.Get(ctx, key).Result(); err != nil || got != "v" {
			t.Fatalf("GET through read_from replica = %q, %v", got, err)
		}
		if after := cmdCalls(t, replica.Addr, "get"); after != before+1 {
			t.Errorf("the replica served %d GETs, want 1", after-before)
		}
	})

	t.Run("FLUSHALL reaches every primary", func(t *testing.T) {
		must(t, c.FlushAll(ctx).Err())
		if n := c.DBSize(ctx).Val(); n != 0 {
			t.Errorf("DBSIZE after FLUSHALL = %d", n)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestClusterPolicyAndGuardsAsStandalone(t *testing.T) {
	rc := redistest.StartCluster(t, 3, 0)
	cmds := policy.BuiltinCommands()
	pol, err := policy.New(policy.Config{Users: map[string]string{"default": "on nopass ~* &* +@all -@dangerous"}}, cmds)
	must(t, err)
	grd, err := guard.New(guard.Config{Unlink: guard.UnlinkConfig{Mode: guard.UnlinkAlways}}, cmds)
	must(t, err)
	tp := startClusterProxy(t, rc, nil, Options{Policy: pol, Guard: grd})
	ctx := ctxT(t)
	c := tp.client(t, 2)
	if err := c.FlushAll(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("FLUSHALL by a user without @dangerous: %v", err)
	}
	keys := keysOnEveryNode("g", 30)
	for _, k := range keys {
		must(t, c.Set(ctx, k, "v", 0).Err())
	}
	before := commandCalls(t, rc, "unlink")
	if n := c.Del(ctx, keys...).Val(); n != int64(len(keys)) {
		t.Errorf("DEL = %d, want %d", n, len(keys))
	}
	if got := commandCalls(t, rc, "unlink") - before; got < 3 {
		t.Errorf("DEL across 3 nodes ran UNLINK %d times, want one per slot (>= 3)", got)
	}
	if got := commandCalls(t, rc, "del"); got != 0 {
		t.Errorf("the nodes ran DEL %d times; the guard should have rewritten it", got)
	}
}

// commandCalls sums cmdstat_<name> calls over the primaries.
func commandCalls(t testing.TB, rc *redistest.Cluster, name string) int {
	total := 0
	for _, n := range rc.Primaries() {
		total += cmdCalls(t, n.Addr, name)
	}
	return total
}

// cmdCalls reads cmdstat_<name> calls from the node at addr.
func cmdCalls(t testing.TB, addr, name string) int {
	n, err := redistest.CommandCalls(addr, name)
	must(t, err)
	return n
}

func TestClusterFollowsSlotMigration(t *testing.T) {
	rc := redistest.StartCluster(t, 2, 0)
	tp := startClusterProxy(t, rc, nil, Options{})
	ctx := ctxT(t)
	c := tp.client(t, 2)
	slot := cluster.Slot([]byte("mig"))
	src := rc.NodeForSlot(slot)
	var dst *redistest.Server
	for _, n := range rc.Primaries() {
		if n != src {
			dst = n
		}
	}
	must(t, c.Set(ctx, "{mig}moved", "1", 0).Err())
	must(t, c.Set(ctx, "{mig}stays", "2", 0).Err())
	srcID, _ := redistest.Do(src.Addr, "CLUSTER", "MYID")
	dstID, _ := redistest.Do(dst.Addr, "CLUSTER", "MYID")
	do := func(addr string, args ...string) {
		t.Helper()
		if _, err := redistest.Do(addr, args...); err != nil {
			t.Fatalf("%s %v: %v", addr, args, err)
		}
	}
	do(dst.Addr, "CLUSTER", "SETSLOT", fmt.Sprint(slot), "IMPORTING", srcID)
	do(src.Addr, "CLUSTER", "SETSLOT", fmt.Sprint(slot), "MIGRATING", dstID)
	do(src.Addr, "MIGRATE", "127.0.0.1", fmt.Sprint(dst.Port), "", "0", "5000", "KEYS", "{mig}moved")

	t.Run("mid-migration, a moved key is reached with ASK and the rest stay on the source", func(t *testing.T) {
		if got, err := c.Get(ctx, "{mig}moved").Result(); err != nil || got != "1" {
			t.Errorf("GET of a migrated key = %q, %v", got, err)
		}
		if got, err := c.Get(ctx, "{mig}stays").Result(); err != nil || got != "2" {
			t.Errorf("GET of a key not yet migrated = %q, %v", got, err)
		}
	})
	t.Run("a multi-key command split across source and target gets TRYAGAIN after bounded retries", func(t *testing.T) {
		started := time.Now()
		err := c.MGet(ctx, "{mig}moved", "{mig}stays").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			t.Errorf("MGET mid-migration: %v, want TRYAGAIN", err)
		}
		t.Logf("TRYAGAIN answered after %v of retries", time.Since(started).Round(time.Millisecond))
	})
	do(src.Addr, "MIGRATE", "127.0.0.1", fmt.Sprint(dst.Port), "", "0", "5000", "KEYS", "{mig}stays")
	for _, n := range rc.Primaries() {
		do(n.Addr, "CLUSTER", "SETSLOT", fmt.Sprint(slot), "NODE", dstID)
	}
	t.Run("after it, MOVED updates the map and the client sees the value, never the redirect", func(t *testing.T) {
		for _, k := range []string{"{mig}moved", "{mig}stays"} {
			if _, err := c.Get(ctx, k).Result(); err != nil {
				t.Errorf("GET %s after migration: %v", k, err)
			}
		}
		if _, addr := tp.Server.cluster.Primary(slot); addr != dst.Addr {
			t.Errorf("slot %d maps to %s, want %s", slot, addr, dst.Addr)
		}
		if got, err := c.MGet(ctx, "{mig}moved", "{mig}stays").Result(); err != nil || got[0] != "1" || got[1] != "2" {
			t.Errorf("MGET after the migration = %v, %v", got, err)
		}
	})
}

// TestClusterFailoverUnderLoad keeps INCR workers running through respguard
// while a primary is replaced: by a manual CLUSTER FAILOVER, and by killing
// it (the cluster promotes its replica after cluster-node-timeout). No
// worker may see a wrong count; errors are allowed only while the slot has
// no primary; every worker must get through afterwards.
func TestClusterFailoverUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failover func(rc *redistest.Cluster, slot int) *redistest.Server
	}{
		{"a replica promoted with CLUSTER FAILOVER", func(rc *redistest.Cluster, slot int) *redistest.Server {
			return rc.Failover(slot)
		}},
		{"the primary killed", func(rc *redistest.Cluster, slot int) *redistest.Server {
			replica := rc.ReplicasForSlot(slot)[0]
			rc.NodeForSlot(slot).Stop()
			return replica
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := redistest.StartCluster(t, 3, 1)
			tp := startClusterProxy(t, rc, nil, Options{})
			slot := cluster.Slot([]byte("counter:0"))
			load := startCounterLoad(t, tp, 8)
			promoted := tc.failover(rc, slot)
			load.waitProgressAfter(t, 30*time.Second)
			if _, addr := tp.Server.cluster.Primary(slot); addr != promoted.Addr {
				t.Errorf("slot %d maps to %s after failover, want %s", slot, addr, promoted.Addr)
			}
		})
	}
}

// counterLoad is INCR workers, one key each, checking every reply.
type counterLoad struct {
	mu         sync.Mutex
	failures   []string
	errors     atomic.Int64
	wg         sync.WaitGroup
	stop       chan struct{}
	changed    atomic.Bool
	caughtUp   chan int // a worker did 10 INCRs after changed was set (or failed)
	numWorkers int
}

func startCounterLoad(t *testing.T, tp *testProxy, workers int) *counterLoad {
	l := &counterLoad{stop: make(chan struct{}), caughtUp: make(chan int, 2*workers), numWorkers: workers}
	ctx := ctxT(t)
	for w := range workers {
		c := tp.client(t, 2)
		l.wg.Add(1)
		go l.work(ctx, c, w)
	}
	return l
}

func (l *counterLoad) work(ctx context.Context, c *redis.Client, w int) {
	defer l.wg.Done()
	key := fmt.Sprintf("counter:%d", w)
	var last, after int64
	uncertain := false // an INCR failed: it may or may not have run
	fail := func(msg string) {
		l.mu.Lock()
		l.failures = append(l.failures, msg)
		l.mu.Unlock()
		select {
		case l.caughtUp <- w:
		default:
		}
	}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		n, err := c.Incr(ctx, key).Result()
		switch {
		case err == nil && n != last+1 && !(uncertain && n > last):
			fail(fmt.Sprintf("%s: INCR = %d after %d", key, n, last))
			return
		case err == nil:
			last, uncertain = n, false
			if l.changed.Load() {
				if after++; after == 10 {
					l.caughtUp <- w // room for two reports per worker
				}
			}
		case !strings.Contains(err.Error(), "upstream unavailable") && !strings.HasPrefix(err.Error(), "TRYAGAIN") && !strings.HasPrefix(err.Error(), "CLUSTERDOWN"):
			fail(fmt.Sprintf("%s: %v", key, err))
			return
		default:
			uncertain = true
			l.errors.Add(1)
		}
	}
}

// waitProgressAfter marks the topology change done, waits for every worker
// to make progress (bounded by limit), stops them and checks their replies.
func (l *counterLoad) waitProgressAfter(t *testing.T, limit time.Duration) {
	t.Helper()
	l.changed.Store(true)
	started := time.Now()
	timeout := time.After(limit)
	for range l.numWorkers {
		select {
		case <-l.caughtUp:
		case <-timeout:
			close(l.stop)
			l.wg.Wait()
			t.Fatalf("a worker made no progress within %v of the change (failures: %q)", limit, l.failures)
		}
	}
	close(l.stop)
	l.wg.Wait()
	if len(l.failures) > 0 {
		t.Fatalf("wrong replies: %q", l.failures)
	}
	t.Logf("all workers through %v after the change; %d error replies (retryable) meanwhile", time.Since(started).Round(time.Millisecond), l.errors.Load())
}

// TestClusterPinnedCommandOnAMovedSlot: a command that must stay on a
// dedicated connection (WATCH, a blocking pop) cannot follow a redirect; when
// the slot moved behind respguard's back, the client gets TRYAGAIN, and its
// retry reaches the new owner.
func TestClusterPinnedCommandOnAMovedSlot(t *testing.T) {
	rc := redistest.StartCluster(t, 2, 0)
	tp := startClusterProxy(t, rc, func(c *cluster.Config) { c.RefreshInterval = time.Hour }, Options{})
	// moveSlot gives the slot of tag (empty) to the other primary, behind
	// respguard's back, and returns the new owner.
	moveSlot := func(tag string) *redistest.Server {
		slot := cluster.Slot([]byte(tag))
		src := rc.NodeForSlot(slot)
		var dst *redistest.Server
		for _, n := range rc.Primaries() {
			if n != src {
				dst = n
			}
		}
		dstID, err := redistest.Do(dst.Addr, "CLUSTER", "MYID")
		must(t, err)
		for _, n := range rc.Primaries() {
			if _, err := redistest.Do(n.Addr, "CLUSTER", "SETSLOT", fmt.Sprint(slot), "NODE", dstID); err != nil {
				t.Fatal(err)
			}
		}
		return dst
	}
	expect := func(raw *rawConn, wants ...string) {
		t.Helper()
		for _, want := range wants {
			if got := raw.line(); !strings.HasPrefix(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}

	t.Run("a WATCH on a moved slot gets TRYAGAIN and its retry reaches the new owner", func(t *testing.T) {
		dst := moveSlot("pin")
		raw := tp.raw(t)
		raw.send("WATCH {pin}k\r\n")
		expect(raw, "-TRYAGAIN slot "+fmt.Sprint(cluster.Slot([]byte("pin")))+" moved to "+dst.Addr)
		raw.send("WATCH {pin}k\r\nMULTI\r\nSET {pin}k v\r\nEXEC\r\n")
		expect(raw, "+OK", "+OK", "+QUEUED", "*1", "+OK")
		if got, _ := redistest.Do(dst.Addr, "GET", "{pin}k"); got != "v" {
			t.Errorf("the retried transaction did not run on the new owner: GET = %q", got)
		}
	})

	t.Run("keys watched before the move are not silently dropped: that EXEC aborts", func(t *testing.T) {
		raw := tp.raw(t)
		raw.send("WATCH {lost}a\r\n")
		expect(raw, "+OK")
		moveSlot("lost")
		raw.send("WATCH {lost}b\r\n")
		expect(raw, "-TRYAGAIN")
		raw.send("WATCH {lost}b\r\nMULTI\r\nSET {lost}b v\r\nEXEC\r\n")
		expect(raw, "+OK", "+OK", "+QUEUED", "*-1")
		raw.send("WATCH {lost}a {lost}b\r\nMULTI\r\nSET {lost}b v\r\nEXEC\r\n")
		expect(raw, "+OK", "+OK", "+QUEUED", "*1", "+OK")
	})

	t.Run("a blocking pop on a moved slot gets TRYAGAIN, then blocks on the new owner", func(t *testing.T) {
		moveSlot("bq")
		raw := tp.raw(t)
		raw.send("BLPOP {bq}q 0\r\n")
		expect(raw, "-TRYAGAIN")
		raw.send("BLPOP {bq}q 0\r\n")
		c := tp.client(t, 2)
		// The pop may register before or after the push: either way the
		// element is its reply.
		must(t, c.RPush(ctxT(t), "{bq}q", "job").Err())
		expect(raw, "*2", "$5", "{bq}q", "$3", "job")
	})
}
