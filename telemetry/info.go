package telemetry

import (
	"net"
	"strconv"
	"strings"
)

// infoKind says how an INFO field is exported.
type infoKind int

const (
	infoGauge   infoKind = iota // a level: memory, clients
	infoCounter                 // cumulative since Redis started
)

// infoField maps one numeric INFO field to an instrument.
type infoField struct {
	key, name, unit, desc string
	kind                  infoKind
}

// infoFields is the operations playbook's monitoring table, as INFO fields.
var infoFields = []infoField{
	{"used_memory", "respguard.redis.memory.used", "By", "Redis used_memory: bytes holding data.", infoGauge},
	{"maxmemory", "respguard.redis.memory.max", "By", "Redis maxmemory (0: no limit).", infoGauge},
	{"mem_fragmentation_ratio", "respguard.redis.memory.fragmentation", "1", "Redis mem_fragmentation_ratio (rss/used): watch above 1.5 or below 1.0.", infoGauge},
	{"keyspace_hits", "respguard.redis.keyspace.hits", "{lookup}", "Redis keyspace_hits.", infoCounter},
	{"keyspace_misses", "respguard.redis.keyspace.misses", "{lookup}", "Redis keyspace_misses.", infoCounter},
	{"evicted_keys", "respguard.redis.keys.evicted", "{key}", "Redis evicted_keys: rising means memory pressure.", infoCounter},
	{"expired_keys", "respguard.redis.keys.expired", "{key}", "Redis expired_keys.", infoCounter},
	{"connected_clients", "respguard.redis.clients.connected", "{connection}", "Redis connected_clients.", infoGauge},
	{"maxclients", "respguard.redis.clients.max", "{connection}", "Redis maxclients.", infoGauge},
	{"blocked_clients", "respguard.redis.clients.blocked", "{connection}", "Redis blocked_clients (BLPOP, BRPOP, WAIT...).", infoGauge},
	{"rejected_connections", "respguard.redis.connections.rejected", "{connection}", "Redis rejected_connections: nonzero means maxclients was hit.", infoCounter},
	{"instantaneous_ops_per_sec", "respguard.redis.instantaneous_ops_per_second", "", "Redis instantaneous_ops_per_sec.", infoGauge},
	{"master_repl_offset", "respguard.redis.replication.offset", "By", "Redis master_repl_offset.", infoGauge},
}

// redisInfo is the part of an INFO reply that telemetry exports.
type redisInfo struct {
	values   map[string]float64 // infoFields keys present in the reply
	replicas []replicaInfo      // "slaveN:" lines of a primary
}

// replicaInfo is one "slaveN:ip=..,port=..,state=..,offset=..,lag=.." line.
type replicaInfo struct {
	addr   string  // ip:port
	offset float64 // replication offset acknowledged by the replica
	lag    float64 // seconds since its last ACK
}

// hitRatio returns keyspace_hits/(hits+misses), false when there were no lookups.
func (r redisInfo) hitRatio() (float64, bool) {
	hits, misses := r.values["keyspace_hits"], r.values["keyspace_misses"]
	if hits+misses == 0 {
		return 0, false
	}
	return hits / (hits + misses), true
}

// parseInfo extracts infoFields and replica lines from INFO text; unknown
// or malformed lines are skipped (INFO grows fields across versions).
func parseInfo(text string) redisInfo {
	info := redisInfo{values: make(map[string]float64)}
	for line := range strings.Lines(text) {
		key, value, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		if isReplicaKey(key) {
			if r, ok := parseReplica(value); ok {
				info.replicas = append(info.replicas, r)
			}
			continue
		}
		if !wantedInfoKey(key) {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			info.values[key] = v
		}
	}
	return info
}

func wantedInfoKey(key string) bool {
	for _, f := range infoFields {
		if f.key == key {
			return true
		}
	}
	return false
}

// isReplicaKey reports whether key is "slave" followed by digits.
func isReplicaKey(key string) bool {
	n, ok := strings.CutPrefix(key, "slave")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// parseReplica parses "ip=10.0.0.2,port=6380,state=online,offset=123,lag=0".
func parseReplica(value string) (replicaInfo, bool) {
	var r replicaInfo
	var ip, port string
	var haveOffset bool
	for field := range strings.SplitSeq(value, ",") {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "ip":
			ip = v
		case "port":
			port = v
		case "offset":
			f, err := strconv.ParseFloat(v, 64)
			r.offset, haveOffset = f, err == nil
		case "lag":
			r.lag, _ = strconv.ParseFloat(v, 64)
		}
	}
	if ip == "" || !haveOffset {
		return replicaInfo{}, false
	}
	r.addr = net.JoinHostPort(ip, port)
	return r, true
}
