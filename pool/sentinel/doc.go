// Package sentinel finds the Redis primary that Sentinel names, and follows it through failovers.
package sentinel
