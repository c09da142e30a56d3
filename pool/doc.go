// Package pool owns respguard's upstream Redis connections: multiplexed,
// pipelined connections shared by many clients, and a puddle/v2 pool of
// dedicated connections for clients that hold connection state.
package pool
