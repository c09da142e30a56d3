package proxy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// diffCase is a minimal sequence of the differential test, kept as the
// shortest reproducer of a divergence the random runs found.
type diffCase struct {
	name   string
	family string // its family: the case is skipped while the family is pending
	steps  [][]diffCmd
	raw    string // written after the steps; the connection must then close
}

// diffCases reproduce, each in a few commands, what the pending families
// diverge on (TOKEN stands for the client's token).
var diffCases = []diffCase{
	{"HELLO 3 inside MULTI is refused and the protocol stays", "multi-state",
		[][]diffCmd{{cmd("MULTI"), refusedInMulti("HELLO", "3"), cmd("EXEC"), cmd("HGETALL", "app:TOKEN:k")}}, ""},
	{"CLIENT SETNAME and SELECT x are queued in MULTI", "multi-local",
		[][]diffCmd{{cmd("MULTI"), cmd("CLIENT", "SETNAME", "n"), cmd("SELECT", "x"), cmd("EXEC")}}, ""},
	{"ACL WHOAMI and ACL CAT are queued in MULTI, answered in EXEC's array", "multi-local",
		[][]diffCmd{{cmd("MULTI"), cmd("ACL", "WHOAMI"), cmd("INCR", "app:TOKEN:n"), cmd("ACL", "CAT"), cmd("EXEC")}}, ""},
	{"ACL subcommands with the wrong arity abort the transaction", "multi-local",
		[][]diffCmd{{cmd("MULTI"), cmd("ACL", "WHOAMI", "x"), cmd("ACL", "DRYRUN", "app"), cmd("INCR", "app:TOKEN:n"), cmd("EXEC"), cmd("GET", "app:TOKEN:n")}}, ""},
	{"a renamed-away command aborts the transaction", "multi-local",
		[][]diffCmd{{cmd("MULTI"), cmd("ECHO", "x"), cmd("INCR", "app:TOKEN:n"), cmd("EXEC")}}, ""},
	{"EXEC with the wrong arity ends the transaction", "exec-denied",
		[][]diffCmd{{cmd("MULTI"), cmd("INCR", "app:TOKEN:n"), cmd("EXEC", "x"), cmd("GET", "app:TOKEN:n")}}, ""},
	{"EXEC denied by ACL ends the transaction", "exec-denied",
		[][]diffCmd{{cmd("AUTH", "noexec", "noexec-pw")}, {cmd("MULTI"), cmd("INCR", "app:TOKEN:n"), cmd("EXEC"), cmd("GET", "app:TOKEN:n")}}, ""},
	{"UNSUBSCRIBE from nothing over RESP2 answers once per channel", "unsubscribe",
		[][]diffCmd{{cmd("UNSUBSCRIBE", "a", "b", "c")}}, ""},
	{"UNSUBSCRIBE from nothing over RESP3 answers with a push", "unsubscribe",
		[][]diffCmd{{cmd("HELLO", "3")}, {cmd("UNSUBSCRIBE", "a")}}, ""},
	{"after UNSUBSCRIBE a local error keeps its place", "unsubscribe-all",
		[][]diffCmd{{cmd("SUBSCRIBE", "app:TOKEN:c"), cmd("UNSUBSCRIBE")}, {cmd("MULTI"), cmd("GET"), cmd("EXEC")}}, ""},
	{"commands pipelined behind an UNSUBSCRIBE from all are answered", "unsubscribe-all",
		[][]diffCmd{{cmd("AUTH", "app", "app-pw")}, {cmd("SUBSCRIBE", "app:TOKEN:c1"), cmd("UNSUBSCRIBE"), cmd("MGET", "app:TOKEN:4", "app:TOKEN:4"), cmd("PUBLISH", "other:TOKEN", "v"), cmd("NOSUCH", "app:TOKEN:4")}}, ""},
	{"a pattern denial waits for the subscription before it", "pubsub",
		[][]diffCmd{{cmd("AUTH", "app", "app-pw")}, {cmd("SUBSCRIBE", "app:TOKEN:c"), cmd("PSUBSCRIBE", "app:TOKEN:*")}}, ""},
	{"a denial in Pub/Sub mode waits for the replies before it", "pubsub-denied",
		[][]diffCmd{{cmd("HELLO", "3", "AUTH", "app", "app-pw")}, {cmd("SUBSCRIBE", "app:TOKEN:c"), cmd("PUBLISH", "app:TOKEN:c", "m"), cmd("SUBSCRIBE", "other:TOKEN")}}, ""},
	{"DEL while subscribed over RESP2 is refused as DEL", "pubsub-context",
		[][]diffCmd{{cmd("SUBSCRIBE", "app:TOKEN:c"), cmd("DEL", "app:TOKEN:k")}}, ""},
	{"AUTH while subscribed over RESP2 is refused in that context", "pubsub-context",
		[][]diffCmd{{cmd("SUBSCRIBE", "app:TOKEN:c"), cmd("AUTH", "full", "full-pw"), cmd("SELECT", "1")}}, ""},
	{"a denial after CLIENT REPLY SKIP keeps its place", "client-reply",
		[][]diffCmd{{cmd("AUTH", "reader", "reader-pw")}, {cmd("CLIENT", "REPLY", "SKIP"), cmd("GET", "k"), cmd("PING")}}, ""},
	{"CLIENT REPLY OFF silences denials", "client-reply-local",
		[][]diffCmd{{cmd("CLIENT", "REPLY", "OFF"), cmd("FLUSHALL"), cmd("CLIENT", "REPLY", "ON")}}, ""},
	{"CLIENT REPLY SKIP skips a denial", "client-reply-local",
		[][]diffCmd{{cmd("CLIENT", "REPLY", "SKIP"), cmd("FLUSHALL"), cmd("PING", "a")}}, ""},
	{"a guard refusal aborts the transaction", "guard-multi",
		[][]diffCmd{{cmd("MULTI"), diffCmd{args: []string{"SET", "app:ttl:TOKEN", "v"}, direct: []string{guardRefusalPlaceholder}}, cmd("INCR", "app:TOKEN:n"), cmd("EXEC")}}, ""},
	{"REPLCONF ACK gets no reply", "replconf",
		[][]diffCmd{{cmd("REPLCONF", "ACK", "0"), cmd("PING", "a")}}, ""},
	{"CR/LF in an unknown command's name", "crlf",
		[][]diffCmd{{cmd("NO\r\nSUCH", "a")}}, ""},
	{"CR/LF in a renamed-away command's arguments", "crlf",
		[][]diffCmd{{cmd("ECHO", "a\r\nb")}}, ""},
	{"CR/LF in a HELLO option", "crlf",
		[][]diffCmd{{cmd("HELLO", "3", "SET\r\nNAME", "x")}}, ""},
	{"an argument over proto-max-bulk-len closes only its client", "oversize",
		nil, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + strconv.Itoa(bulkLimit+1) + "\r\n"},
}

// TestDifferentialCases runs the reproducers of families that no longer
// diverge (all of them with RESPGUARD_DIFF_PENDING=1), each on a fresh client
// speaking RESP2 as the default user, followed by a second client on the
// same shared upstream connection: a reply missing or extra on the shared
// connection shows in the second client's replies (the first client's own
// stream can look right: a missing reply shifts its replies by one, and it
// stops reading at its marker). With pending cases enabled each case gets
// servers of its own, since one desynchronized shared connection would fail
// the cases after it.
func TestDifferentialCases(t *testing.T) {
	enabled := enabledFamilies()
	ownServers := os.Getenv("RESPGUARD_DIFF_PENDING") != ""
	var shared *diffRig
	if !ownServers {
		shared = startDiffRig(t, 1)
	}
	for _, dc := range diffCases {
		t.Run(dc.name, func(t *testing.T) {
			if !enabled[dc.family] {
				t.Skipf("family %s is pending: %s", dc.family, pendingFamilies[dc.family])
			}
			rig := shared
			if ownServers {
				rig = startDiffRig(t, 1)
			}
			if err := rig.runCase(dc); err != nil {
				t.Error(err)
			}
			if err := rig.runCase(diffCase{family: "plain", steps: [][]diffCmd{{cmd("GET", "app:TOKEN:k")}}}); err != nil {
				t.Errorf("the next client: %v", err)
			}
		})
	}
}

// runCase runs one case's steps both ways on a fresh client.
func (rig *diffRig) runCase(dc diffCase) error {
	tok := fmt.Sprintf("tk%08d", rig.tokens.Add(1))
	c := &diffClient{rig: rig, stats: &diffStats{}, gen: &diffGen{ch: &byteChoices{}, tok: tok}}
	defer c.close()
	if err := c.dial(); err != nil {
		return err
	}
	steps := make([]diffStep, 0, len(dc.steps)+1)
	for _, cmds := range dc.steps {
		st := diffStep{family: dc.family}
		for _, dcmd := range cmds {
			st.cmds = append(st.cmds, withToken(dcmd, tok))
		}
		steps = append(steps, st)
	}
	if dc.raw != "" {
		steps = append(steps, diffStep{family: dc.family, raw: dc.raw})
	}
	for _, st := range steps {
		if err := c.do(st); err != nil {
			return fmt.Errorf("%w\nsequence:\n%s", err, c.transcript.String())
		}
	}
	return nil
}

// withToken returns dc with TOKEN replaced by tok.
func withToken(dc diffCmd, tok string) diffCmd {
	replace := func(args []string) []string {
		if args == nil {
			return nil
		}
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = strings.ReplaceAll(a, "TOKEN", tok)
		}
		return out
	}
	return diffCmd{args: replace(dc.args), direct: replace(dc.direct)}
}

// TestDifferentialNormalizationIsNarrow: what sameReply accepts beyond
// equality, and what it does not.
func TestDifferentialNormalizationIsNarrow(t *testing.T) {
	hello := func(id string) string {
		return "%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$2\r\nid\r\n:" + id + "\r\n"
	}
	guardUnknown := "-ERR unknown command '" + guardRefusalPlaceholder + "', with args beginning with: \r\n"
	multiUnknown := "-ERR unknown command '" + multiRefusalPlaceholder + "', with args beginning with: \r\n"
	for _, tc := range []struct {
		name       string
		redis, got string
		same       bool
	}{
		{"HELLO's id may differ", hello("7"), hello("123"), true},
		{"nothing else in HELLO may", hello("7"), strings.Replace(hello("7"), "redis", "rediz", 1), false},
		{"a guard refusal stands for its placeholder", guardUnknown, "-ERR respguard: SET on 'k' would leave the key without a TTL\r\n", true},
		{"but no other error does", guardUnknown, "-ERR syntax error\r\n", false},
		{"a refusal inside MULTI stands for its placeholder", multiUnknown, "-ERR respguard: 'hello' is not supported inside MULTI: x\r\n", true},
		{"so does its refusal of a script inside MULTI", multiUnknown, "-NOPERM respguard runs the scripts of user 'app' as Redis user 'respguard-mirror:app' on a connection of their own, so not inside MULTI or while subscribed\r\n", true},
		{"the guard's oversize refusal gives the size Redis returned", "*17\r\n", "-ERR respguard: LRANGE on 'k' would return 17 elements (limit 16); x\r\n", true},
		{"not another size", "*18\r\n", "-ERR respguard: LRANGE on 'k' would return 17 elements (limit 16); x\r\n", false},
		{"an unknown command may be NOPERM", "-ERR unknown command 'foo', with args beginning with: \r\n", "-NOPERM this user has no permissions to run the 'foo' command\r\n", true},
		{"for the same command only", "-ERR unknown command 'foo', with args beginning with: \r\n", "-NOPERM this user has no permissions to run the 'bar' command\r\n", false},
		{"an unknown subcommand may be NOPERM", "-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n", "-NOPERM this user has no permissions to run the 'client|nosuch' command\r\n", true},
		{"a known command may not", "$1\r\nx\r\n", "-NOPERM this user has no permissions to run the 'get' command\r\n", false},
	} {
		if got := sameReply(tc.redis, tc.got); got != tc.same {
			t.Errorf("%s: sameReply(%q, %q) = %v", tc.name, tc.redis, tc.got, got)
		}
	}
}
