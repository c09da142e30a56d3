package policy

import "strings"

// PresetProduction is the Config.DefaultRules value that appends
// ProductionRules to every user.
const PresetProduction = "production"

// ProductionRules blocks what the operations playbook says never to run
// against production through the proxy. Each rule comes with its reason.
// Operators who need these commands run them against Redis directly.
var ProductionRules = []struct{ Rule, Reason string }{
	{"-keys", "walks the whole keyspace in one call and blocks the server; use SCAN"},
	{"-flushall", "deletes every key in every database"},
	{"-flushdb", "deletes every key in the database"},
	{"-swapdb", "swaps whole databases under every client"},
	{"-config", "CONFIG SET can change dir/dbfilename (arbitrary file writes), requirepass and memory limits"},
	{"-debug", "can crash, hang or corrupt the server (DEBUG SEGFAULT, SLEEP, RELOAD)"},
	{"-shutdown", "stops the server"},
	{"-monitor", "streams every command of every client, passwords included, and slows the server"},
	{"-save", "a synchronous save blocks the server"},
	{"-bgsave", "forks the server (memory spike); snapshots are the operators' schedule"},
	{"-bgrewriteaof", "forks the server and rewrites the append-only file"},
	{"-replicaof", "makes the server a replica of another host: its data is replaced"},
	{"-slaveof", "old name of REPLICAOF"},
	{"-failover", "hands the primary role to a replica"},
	{"-sync", "copies the whole dataset to the caller (replication handshake)"},
	{"-psync", "copies the whole dataset to the caller (replication handshake)"},
	{"-migrate", "moves keys to an arbitrary host"},
	{"-module", "loads native code into the server"},
	{"-cluster|addslots", "changes cluster slot ownership"},
	{"-cluster|addslotsrange", "changes cluster slot ownership"},
	{"-cluster|delslots", "changes cluster slot ownership"},
	{"-cluster|delslotsrange", "changes cluster slot ownership"},
	{"-cluster|flushslots", "changes cluster slot ownership"},
	{"-cluster|setslot", "changes cluster slot ownership"},
	{"-cluster|meet", "changes cluster membership"},
	{"-cluster|forget", "changes cluster membership"},
	{"-cluster|reset", "changes cluster membership"},
	{"-cluster|replicate", "changes a node's role"},
	{"-cluster|failover", "changes a node's role"},
	{"-cluster|saveconfig", "rewrites the cluster configuration file"},
	{"-cluster|set-config-epoch", "changes cluster configuration epochs"},
	{"-cluster|bumpepoch", "changes cluster configuration epochs"},
	{"-acl|setuser", "changes Redis's own users; respguard's users live in its configuration"},
	{"-acl|deluser", "changes Redis's own users"},
	{"-acl|load", "reloads Redis's own users"},
	{"-acl|save", "rewrites Redis's ACL file"},
	{"-script|flush", "drops every cached script of every client"},
	{"-function|flush", "drops every function library"},
}

// presets maps Config.DefaultRules values to the rules they append.
var presets = map[string]string{
	"":               "",
	PresetProduction: productionRuleString(),
}

func productionRuleString() string {
	rules := make([]string, len(ProductionRules))
	for i, r := range ProductionRules {
		rules[i] = r.Rule
	}
	return strings.Join(rules, " ")
}
