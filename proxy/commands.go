package proxy

import "bytes"

// kind says how the proxy routes a command; the command model (model.go)
// gives each command its kind.
type kind uint8

const (
	kindForward     kind = iota // exactly one reply, no connection state: any shared connection of the client's (db, protocol)
	kindLocal                   // answered by respguard (HELLO, SELECT, AUTH, QUIT, RESET, CLIENT SETNAME/GETNAME)
	kindMulti                   // MULTI: starts a transaction on a dedicated connection
	kindTxEnd                   // EXEC, DISCARD
	kindWatch                   // WATCH: pins
	kindUnwatch                 // UNWATCH
	kindBlocking                // may block the connection: runs on a dedicated connection
	kindSubscribe               // SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: dedicated, streamed
	kindUnsubscribe             // UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE: streamed, or answered by respguard when not subscribed
	kindMonitor                 // MONITOR: dedicated, streamed, never reused
	kindClient                  // CLIENT REPLY, TRACKING, CACHING: connection state kept on a dedicated connection
	kindACL                     // ACL: answered from the policy, refused, or forwarded
	kindInfo                    // INFO: Redis's reply plus respguard's section
	kindReplconf                // REPLCONF: a replica's command; answered by respguard
	kindIsolated                // one reply; changes connection state respguard does not track (READONLY): alone on a dedicated connection, destroyed afterwards unless Redis refused it
	kindUnknown                 // unknown effect and reply count: alone on a dedicated connection, destroyed afterwards
	kindControl                 // ends a busy or paused server (SCRIPT KILL, CLIENT UNPAUSE...): a connection of its own, at once
	kindReplicate               // SYNC, PSYNC: a replication link of its own, then raw bytes (see replicate)
)

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
