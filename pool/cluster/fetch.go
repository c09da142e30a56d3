package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/respguard/respguard/pool"
	tidwall "github.com/tidwall/resp"
)

// shardLayout is one shard as a node described it.
type shardLayout struct {
	ranges   [][2]int // inclusive slot ranges, validated
	primary  string   // host:port; "" when the shard has no primary
	replicas []string // healthy replicas
}

// fetch asks the node at addr for the topology: CLUSTER SHARDS, or CLUSTER
// SLOTS on Redis before 7.0 (remembered after the first refusal).
func (c *Cluster) fetch(ctx context.Context, addr string) ([]shardLayout, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ctl := pool.NewControl(c.cfg.nodeConfig(addr, false))
	if !c.noShards.Load() {
		reply, err := query(ctx, ctl, "SHARDS")
		if err == nil {
			return parseShards(reply, host, c.cfg.Node.TLS != nil)
		}
		if !isUnknownSubcommand(err) {
			return nil, fmt.Errorf("CLUSTER SHARDS on %s: %w", addr, err)
		}
		c.noShards.Store(true)
	}
	reply, err := query(ctx, ctl, "SLOTS")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS on %s: %w", addr, err)
	}
	return parseSlots(reply, host)
}

// query runs CLUSTER sub; an error reply is returned as a *pool.RedisError.
func query(ctx context.Context, ctl *pool.Control, sub string) (tidwall.Value, error) {
	vals, err := ctl.Do(ctx, []string{"CLUSTER", sub})
	if err != nil {
		return tidwall.Value{}, err
	}
	if vals[1].Type() == tidwall.Error {
		return tidwall.Value{}, &pool.RedisError{Msg: vals[1].String()}
	}
	return vals[1], nil
}

// isUnknownSubcommand reports a Redis too old for the subcommand ("ERR
// unknown subcommand 'SHARDS'" in 6.2, "ERR Unknown subcommand or wrong
// number of arguments" before).
func isUnknownSubcommand(err error) bool {
	var re *pool.RedisError
	return errors.As(err, &re) && strings.Contains(strings.ToLower(re.Msg), "unknown subcommand")
}

// parseShards reads CLUSTER SHARDS (RESP2): per shard, pairs "slots" [start,
// end, ...] and "nodes" [node...], each node pairs of id, port, tls-port, ip,
// endpoint, hostname, role, replication-offset, health. host is the queried
// node's, for endpoints reported as "".
func parseShards(v tidwall.Value, host string, useTLS bool) ([]shardLayout, error) {
	var out []shardLayout
	for _, s := range v.Array() {
		fields := pairs(s)
		ranges, err := slotRanges(fields["slots"].Array())
		if err != nil {
			return nil, err
		}
		l := shardLayout{ranges: ranges}
		for _, n := range fields["nodes"].Array() {
			addShardNode(&l, pairs(n), host, useTLS)
		}
		out = append(out, l)
	}
	return out, nil
}

// addShardNode adds one CLUSTER SHARDS node to l: the primary (role master,
// whatever its health), or a replica if its health is "online". Redis 7.0
// reports a replica whose replication offset is still 0 as "loading": it is
// skipped until the primary has propagated a first write.
func addShardNode(l *shardLayout, n map[string]tidwall.Value, host string, useTLS bool) {
	addr := shardNodeAddr(n, host, useTLS)
	switch {
	case addr == "":
	case n["role"].String() == "master":
		l.primary = addr
	case n["health"].String() == "online":
		l.replicas = append(l.replicas, addr)
	}
}

// shardNodeAddr is host:port of a CLUSTER SHARDS node: its endpoint, else
// its ip ("?" or "" endpoint), else the queried host; the TLS port when
// dialing with TLS and the node has one. "" when there is no usable port.
func shardNodeAddr(n map[string]tidwall.Value, host string, useTLS bool) string {
	h := n["endpoint"].String()
	if h == "" || h == "?" {
		h = n["ip"].String()
	}
	if h == "" || h == "?" {
		h = host
	}
	port, tlsPort := n["port"].Integer(), n["tls-port"].Integer()
	if port == 0 || (useTLS && tlsPort != 0) {
		port = tlsPort
	}
	if port <= 0 {
		return ""
	}
	return net.JoinHostPort(h, fmt.Sprint(port))
}

// parseSlots reads CLUSTER SLOTS: entries [start, end, primary, replica...],
// each node [host, port, id, ...]. Entries of one primary form one shard.
// Redis lists only available replicas (not failed, offset not 0).
func parseSlots(v tidwall.Value, host string) ([]shardLayout, error) {
	var out []shardLayout
	byPrimary := map[string]int{}
	for _, e := range v.Array() {
		a := e.Array()
		if len(a) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS entry has %d elements", len(a))
		}
		r, err := slotRanges(a[:2])
		if err != nil {
			return nil, err
		}
		primary := slotsNodeAddr(a[2], host)
		i, ok := byPrimary[primary]
		if !ok {
			i, byPrimary[primary] = len(out), len(out)
			out = append(out, shardLayout{primary: primary, replicas: slotsReplicas(a[3:], host)})
		}
		out[i].ranges = append(out[i].ranges, r...)
	}
	return out, nil
}

func slotsReplicas(nodes []tidwall.Value, host string) []string {
	var out []string
	for _, n := range nodes {
		if addr := slotsNodeAddr(n, host); addr != "" {
			out = append(out, addr)
		}
	}
	return out
}

// slotsNodeAddr is host:port of a CLUSTER SLOTS node; "" host means the
// queried one, "?" (or a NULL) an unknown endpoint: "" is returned.
func slotsNodeAddr(n tidwall.Value, host string) string {
	a := n.Array()
	if len(a) < 2 || a[0].IsNull() || a[0].String() == "?" || a[1].Integer() <= 0 {
		return ""
	}
	h := a[0].String()
	if h == "" {
		h = host
	}
	return net.JoinHostPort(h, fmt.Sprint(a[1].Integer()))
}

// slotRanges reads [start, end, start, end...], checking each range.
func slotRanges(a []tidwall.Value) ([][2]int, error) {
	if len(a)%2 != 0 {
		return nil, fmt.Errorf("odd slot range list %v", a)
	}
	out := make([][2]int, 0, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		lo, hi := a[i].Integer(), a[i+1].Integer()
		if lo < 0 || lo > hi || hi >= Slots {
			return nil, fmt.Errorf("bad slot range %d-%d", lo, hi)
		}
		out = append(out, [2]int{lo, hi})
	}
	return out, nil
}

// pairs reads a flat [key, value, ...] array into a map.
func pairs(v tidwall.Value) map[string]tidwall.Value {
	a := v.Array()
	m := make(map[string]tidwall.Value, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		m[a[i].String()] = a[i+1]
	}
	return m
}
