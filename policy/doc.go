// Package policy decides, without I/O, whether a user may run a command, in Redis's own ACL rule syntax.
//
// A [Policy] is built once from a [Config] and a [Commands] table (command
// arity, ACL categories and key specs, either the built-in table generated
// from Redis 7.0 or one read from the upstream's COMMAND reply). It is
// immutable: hot reload builds a new Policy and swaps the pointer atomically.
// The proxy resolves renamed commands with [Policy.Resolve], authenticates
// clients with [Policy.Authenticate] and asks [Policy.Check] for every
// command; Check does not allocate when it allows a command.
//
// Decisions follow Redis 7.0's ACLCheckAllUserCommandPerm: the command (or
// subcommand, or first argument) must be allowed, every key found by the
// command's key specs must match a key pattern carrying the access the key
// spec needs (%R for read, %W for write), and every Pub/Sub channel must match
// a channel pattern. Denial texts are Redis 7.0's. Check also makes the
// judgements Redis makes while running a command: SORT's BY and GET
// patterns need read access to every key; scripts of restricted users are
// refused, or carry Decision.Identity, the Redis user they must run as so
// that Redis judges each redis.call (Config.ScriptIdentity, Policy.Mirrors).
package policy
