package pool

import (
	"strconv"

	"github.com/respguard/respguard/proxy/resp"
)

// Limits are Redis's own bounds on one client connection, read with CONFIG
// GET whenever a connection is set up (and by Control.Probe). A zero field is
// unknown: CONFIG was refused (ACL, rename-command) or its reply was not
// understood, and callers fall back to their own configuration.
type Limits struct {
	MaxBulkLen       int64 // proto-max-bulk-len: a longer bulk argument is a protocol error
	QueryBufferLimit int64 // client-query-buffer-limit: Redis closes a client whose query buffer grows past it
	Databases        int   // databases: SELECT's range
}

// limitParams are the configuration parameters Limits holds, in the order
// limitCommands asks for them. One CONFIG GET each: Redis before 7.0 takes a
// single parameter.
var limitParams = [...]string{"proto-max-bulk-len", "client-query-buffer-limit", "databases"}

// appendLimitCommands appends the CONFIG GET commands that read Limits.
func appendLimitCommands(b []byte) []byte {
	for _, p := range limitParams {
		b = resp.AppendCommandStrings(b, "CONFIG", "GET", p)
	}
	return b
}

// set records the value of parameter i of limitParams from its CONFIG GET
// reply's value; anything but a positive integer leaves the field unknown.
func (l *Limits) set(i int, value string) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n <= 0 {
		return
	}
	switch limitParams[i] {
	case "proto-max-bulk-len":
		l.MaxBulkLen = n
	case "client-query-buffer-limit":
		l.QueryBufferLimit = n
	case "databases":
		l.Databases = int(n)
	}
}
