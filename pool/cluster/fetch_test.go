package cluster

import (
	"slices"
	"testing"

	tidwall "github.com/tidwall/resp"
)

// arr, str and num build RESP values as Redis sends them.
func arr(v ...tidwall.Value) tidwall.Value { return tidwall.ArrayValue(v) }
func str(s string) tidwall.Value           { return tidwall.StringValue(s) }
func num(n int) tidwall.Value              { return tidwall.IntegerValue(n) }

// shardNode is one node of a CLUSTER SHARDS reply.
func shardNode(endpoint, ip string, port, tlsPort int, role, health string) tidwall.Value {
	fields := []tidwall.Value{str("id"), str("0123"), str("port"), num(port)}
	if tlsPort != 0 {
		fields = append(fields, str("tls-port"), num(tlsPort))
	}
	fields = append(fields, str("ip"), str(ip), str("endpoint"), str(endpoint), str("role"), str(role),
		str("replication-offset"), num(42), str("health"), str(health))
	return arr(fields...)
}

func TestParseShards(t *testing.T) {
	reply := arr(
		arr(str("slots"), arr(num(0), num(99), num(200), num(299)), str("nodes"), arr(
			shardNode("10.0.0.1", "10.0.0.1", 7000, 0, "master", "online"),
			shardNode("10.0.0.2", "10.0.0.2", 7001, 0, "replica", "online"),
			shardNode("10.0.0.3", "10.0.0.3", 7002, 0, "replica", "loading"),
			shardNode("10.0.0.4", "10.0.0.4", 7003, 0, "replica", "fail"),
		)),
		arr(str("slots"), arr(), str("nodes"), arr(
			shardNode("?", "10.0.0.5", 7004, 0, "master", "online"), // unknown endpoint: ip
			shardNode("", "", 7005, 0, "replica", "online"),         // same host as queried
		)),
	)
	got, err := parseShards(reply, "seed.example", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []shardLayout{
		{ranges: [][2]int{{0, 99}, {200, 299}}, primary: "10.0.0.1:7000", replicas: []string{"10.0.0.2:7001"}},
		{ranges: [][2]int{}, primary: "10.0.0.5:7004", replicas: []string{"seed.example:7005"}},
	}
	if !equalLayouts(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseShardsUsesTheTLSPortWhenDialingTLS(t *testing.T) {
	reply := arr(arr(str("slots"), arr(num(0), num(16383)), str("nodes"), arr(
		shardNode("h", "h", 7000, 8000, "master", "online"),
		shardNode("r", "r", 0, 8001, "replica", "online"), // tls-cluster: only a TLS port
	)))
	for _, tc := range []struct {
		tls           bool
		primary, repl string
	}{{false, "h:7000", "r:8001"}, {true, "h:8000", "r:8001"}} {
		got, err := parseShards(reply, "seed", tc.tls)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].primary != tc.primary || !slices.Equal(got[0].replicas, []string{tc.repl}) {
			t.Errorf("tls=%v: got %+v", tc.tls, got[0])
		}
	}
}

func TestParseShardsRejectsBadSlotRanges(t *testing.T) {
	for _, slots := range []tidwall.Value{arr(num(5), num(4)), arr(num(0), num(16384)), arr(num(0))} {
		reply := arr(arr(str("slots"), slots, str("nodes"), arr()))
		if _, err := parseShards(reply, "seed", false); err == nil {
			t.Errorf("slots %v accepted", slots)
		}
	}
}

// slotsNode is one node of a CLUSTER SLOTS entry.
func slotsNode(host string, port int) tidwall.Value {
	return arr(str(host), num(port), str("0123"), arr())
}

func TestParseSlotsGroupsRangesByPrimary(t *testing.T) {
	reply := arr(
		arr(num(0), num(99), slotsNode("a", 1), slotsNode("b", 2)),
		arr(num(100), num(199), slotsNode("", 3)), // "" = the queried host
		arr(num(200), num(299), slotsNode("a", 1), slotsNode("?", 9), slotsNode("b", 2)),
	)
	got, err := parseSlots(reply, "seed")
	if err != nil {
		t.Fatal(err)
	}
	want := []shardLayout{
		{ranges: [][2]int{{0, 99}, {200, 299}}, primary: "a:1", replicas: []string{"b:2"}},
		{ranges: [][2]int{{100, 199}}, primary: "seed:3"},
	}
	if !equalLayouts(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func equalLayouts(a, b []shardLayout) bool {
	return slices.EqualFunc(a, b, func(x, y shardLayout) bool {
		return x.primary == y.primary && slices.Equal(x.replicas, y.replicas) && slices.Equal(x.ranges, y.ranges)
	})
}
