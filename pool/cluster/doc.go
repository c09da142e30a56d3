// Package cluster keeps the slot map of a Redis Cluster and one upstream pool per node.
package cluster
