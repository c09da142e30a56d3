package telemetry

import (
	"context"
	"strings"
	"time"
)

// Command describes one completed command. The proxy fills one per command
// (it may reuse the struct) and passes it to CommandDone, which does not
// retain it: strings it keeps (slow log, spans) are copied, except the
// string fields other than Statement, which must be ordinary immutable Go
// strings (a fixed table, the session's user and address).
type Command struct {
	// Name is the lower-case command name from a fixed table, e.g. "get"
	// (subcommands as "client|setname"). "" is recorded as "unknown".
	Name string
	// Statement is the already-redacted query text (see FormatStatement
	// and StatementMode), or "". It may alias a buffer the proxy reuses
	// after CommandDone returns. Fill it only when StatementWanted.
	Statement string
	// Args and KeyIndexes, when Statement is "", let telemetry format the
	// statement itself, only for commands that are traced or slow-logged
	// (the cheaper option for the proxy). args[0] is the command name.
	// Read only during CommandDone; nil means no statement.
	Args       [][]byte
	KeyIndexes []int
	// Start is when the command was parsed; Done when its reply was fully
	// handed to the client writer. Done-Start is the latency metric.
	Start, Done time.Time
	// Upstream is the time spent waiting on Redis; 0 if answered locally.
	Upstream time.Duration
	// User is the authenticated ACL user, "" before AUTH.
	User string
	// ClientAddr is the client's "ip:port".
	ClientAddr string
	// DB is the selected database index (db.namespace).
	DB int
	// Decision is the policy outcome: "allowed", "denied", "rewritten"
	// or "guarded"; "" is not recorded.
	Decision string
	// ErrPrefix is "" when the reply is not an error, else its first word,
	// e.g. "ERR", "WRONGTYPE", "NOPERM".
	ErrPrefix string
	// ServerAddr and ServerPort name the upstream Redis; "" / 0 when the
	// command was answered locally.
	ServerAddr string
	ServerPort int
	// Queued holds, for EXEC, the commands queued since MULTI. They become
	// child spans of EXEC's span and are not counted again in metrics or
	// the slow log (the proxy reports each one through its own CommandDone
	// when its +QUEUED reply is sent). Their zero Start/Done default to
	// EXEC's.
	Queued []Command
}

// CommandDone records a completed command: latency and error metrics
// always; a slow-log entry when it took longer than slowlog.threshold; a
// span when the sampler picks it (ratio, or slower than
// traces.slow_threshold, at most slowSpansPerSecond of those a second). It is the hot path: once a command name (and
// error code) has been seen, a call without a span or slow-log entry does
// not allocate.
func (t *Telemetry) CommandDone(c *Command) {
	cm := t.commands.get(commandName(c.Name))
	t.recordCommand(context.Background(), c, cm)
	total := c.Done.Sub(c.Start)
	slow := t.slowlogOn && total > t.slowlogThreshold
	traced := t.sampler.sample(total, c.Done)
	if slow || traced {
		t.recordDetail(c, cm, total, slow, traced)
	}
}

// recordDetail is CommandDone's slow path: the statement is built once and
// shared by the slow log and the span.
func (t *Telemetry) recordDetail(c *Command, cm *commandMetrics, total time.Duration, slow, traced bool) {
	stmt := t.statement(c)
	if slow {
		t.slowlog.add(SlowEntry{
			Time: c.Start, Duration: total, Upstream: c.Upstream,
			Command: cm.name, Statement: t.slowStatement(stmt, cm),
			User: c.User, ClientAddr: c.ClientAddr, DB: c.DB,
			Decision: c.Decision, Error: c.ErrPrefix,
		})
	}
	if traced {
		t.emitSpan(c, cm, stmt)
	}
}

// statement returns c's redacted statement as a string owned by telemetry,
// or "" when the mode is none or there is nothing to format.
func (t *Telemetry) statement(c *Command) string {
	switch {
	case t.mode == StatementNone:
		return ""
	case c.Statement != "":
		return strings.Clone(c.Statement)
	case len(c.Args) > 0:
		return string(FormatStatement(nil, t.mode, c.Args, c.KeyIndexes))
	}
	return ""
}

func (t *Telemetry) slowStatement(stmt string, cm *commandMetrics) string {
	if stmt == "" {
		return cm.operation
	}
	return stmt
}

// StatementWanted reports whether Command.Statement (or Args) can be used
// at all: the statement mode is not "none" and tracing or the slow log is
// on. When false the proxy should leave Statement empty.
func (t *Telemetry) StatementWanted() bool { return t.statementWanted }

// StatementMode returns the effective traces.statement mode, for the proxy's
// FormatStatement calls.
func (t *Telemetry) StatementMode() StatementMode { return t.mode }
