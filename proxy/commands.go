package proxy

import "bytes"

// kind says how the proxy routes a command.
type kind uint8

const (
	kindForward   kind = iota // stateless: any shared connection of the client's (db, protocol)
	kindLocal                 // answered by respguard (HELLO, SELECT, AUTH, QUIT, RESET, CLIENT SETNAME/GETNAME)
	kindMulti                 // MULTI: starts a transaction on a dedicated connection
	kindTxEnd                 // EXEC, DISCARD
	kindWatch                 // WATCH: pins
	kindUnwatch               // UNWATCH
	kindBlocking              // may block the connection: runs on a dedicated connection
	kindSubscribe             // SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: dedicated, streamed
	kindMonitor               // MONITOR: dedicated, streamed, never reused
	kindClient                // CLIENT: depends on the subcommand
	kindACL                   // ACL: answered from the policy, refused, or forwarded
	kindInfo                  // INFO: Redis's reply plus respguard's section
)

// commandKinds maps lowercase command names to their routing kind. Names not
// listed are forwarded.
var commandKinds = map[string]kind{
	"hello": kindLocal, "select": kindLocal, "auth": kindLocal, "quit": kindLocal, "reset": kindLocal,
	"multi": kindMulti, "exec": kindTxEnd, "discard": kindTxEnd,
	"watch": kindWatch, "unwatch": kindUnwatch,
	"blpop": kindBlocking, "brpop": kindBlocking, "brpoplpush": kindBlocking, "blmove": kindBlocking,
	"blmpop": kindBlocking, "bzpopmin": kindBlocking, "bzpopmax": kindBlocking, "bzmpop": kindBlocking,
	"wait": kindBlocking, "waitaof": kindBlocking,
	"xread": kindBlocking, "xreadgroup": kindBlocking, // only with BLOCK; see isBlocking
	"subscribe": kindSubscribe, "psubscribe": kindSubscribe, "ssubscribe": kindSubscribe,
	"monitor": kindMonitor,
	"client":  kindClient,
	"acl":     kindACL,
	"info":    kindInfo,
}

// lowerName writes the lowercase form of name into buf and returns it; a name
// longer than buf is returned unchanged (no table entry is that long).
func lowerName(buf []byte, name []byte) []byte {
	if len(name) > len(buf) {
		return name
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(name)]
}

// isBlocking reports whether an XREAD/XREADGROUP has a BLOCK option (other
// blocking kinds always block).
func isBlocking(name string, args [][]byte) bool {
	if name != "xread" && name != "xreadgroup" {
		return true
	}
	for _, a := range args[1:] {
		if bytes.EqualFold(a, []byte("block")) {
			return true
		}
		if bytes.EqualFold(a, []byte("streams")) {
			return false
		}
	}
	return false
}

// clientSub returns the lowercase CLIENT subcommand, or "".
func clientSub(args [][]byte) string {
	if len(args) < 2 {
		return ""
	}
	var buf [16]byte
	return string(lowerName(buf[:], args[1]))
}
