package telemetry

import (
	"reflect"
	"testing"
)

const infoSample = "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\nconnected_clients:12\r\nmaxclients:10000\r\nblocked_clients:2\r\n\r\n" +
	"# Memory\r\nused_memory:1986532352\r\nmaxmemory:4294967296\r\nmem_fragmentation_ratio:1.14\r\n\r\n" +
	"# Stats\r\ninstantaneous_ops_per_sec:4521\r\nrejected_connections:0\r\nexpired_keys:77\r\nevicted_keys:5\r\nkeyspace_hits:900\r\nkeyspace_misses:100\r\n\r\n" +
	"# Replication\r\nrole:master\r\nconnected_slaves:2\r\n" +
	"slave0:ip=10.0.0.2,port=6380,state=online,offset=1000,lag=0\r\n" +
	"slave1:ip=::1,port=6381,state=online,offset=400,lag=3\r\n" +
	"master_repl_offset:1200\r\n\r\n# Keyspace\r\ndb0:keys=10,expires=1,avg_ttl=0\r\n"

func TestParseInfo(t *testing.T) {
	tests := []struct {
		name         string
		text         string
		wantValues   map[string]float64
		wantReplicas []replicaInfo
	}{
		{"a primary's INFO yields the monitoring table", infoSample, map[string]float64{
			"connected_clients": 12, "maxclients": 10000, "blocked_clients": 2,
			"used_memory": 1986532352, "maxmemory": 4294967296, "mem_fragmentation_ratio": 1.14,
			"instantaneous_ops_per_sec": 4521, "rejected_connections": 0, "expired_keys": 77,
			"evicted_keys": 5, "keyspace_hits": 900, "keyspace_misses": 100, "master_repl_offset": 1200,
		}, []replicaInfo{{"10.0.0.2:6380", 1000, 0}, {"[::1]:6381", 400, 3}}},
		{"LF line endings work too", "used_memory:10\nblocked_clients:1\n", map[string]float64{"used_memory": 10, "blocked_clients": 1}, nil},
		{"non-numeric and unknown fields are skipped", "used_memory:lots\nfoo:1\nno colon here\n", map[string]float64{}, nil},
		{"a replica line without offset is skipped", "slave0:ip=10.0.0.2,port=6380,state=wait_bgsave\r\n", map[string]float64{}, nil},
		{"empty text gives nothing", "", map[string]float64{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseInfo(tt.text)
			if !reflect.DeepEqual(got.values, tt.wantValues) {
				t.Errorf("values = %v, want %v", got.values, tt.wantValues)
			}
			if !reflect.DeepEqual(got.replicas, tt.wantReplicas) {
				t.Errorf("replicas = %+v, want %+v", got.replicas, tt.wantReplicas)
			}
		})
	}
}

func TestHitRatio(t *testing.T) {
	if r, ok := parseInfo(infoSample).hitRatio(); !ok || r != 0.9 {
		t.Fatalf("hit ratio = %v, %v; want 0.9", r, ok)
	}
	if _, ok := parseInfo("keyspace_hits:0\r\nkeyspace_misses:0\r\n").hitRatio(); ok {
		t.Fatal("a Redis with no lookups has no hit ratio")
	}
}
