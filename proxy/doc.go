// Package proxy serves the Redis protocol to clients and forwards their
// commands to Redis over shared multiplexed connections, or over a dedicated
// connection while a client holds connection state, keeping every client's
// replies in the order of its commands.
package proxy
