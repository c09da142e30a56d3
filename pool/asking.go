package pool

import (
	"errors"

	"github.com/respguard/respguard/proxy/resp"
)

// errStreaming refuses ASKING on a connection whose replies are unmatched.
var errStreaming = errors.New("pool: connection streams replies (Pub/Sub, MONITOR)")

var askingCommand = resp.AppendCommandStrings(nil, "ASKING")

// SendAsking sends ASKING immediately followed by the encoded command raw,
// with nothing from other senders in between (ASKING applies to the
// connection's next command only). ASKING's own reply is discarded; the
// command's reply goes to target as seq. It is Redis Cluster's answer to an
// -ASK redirect during a slot migration.
func (p *Pipe) SendAsking(target Target, seq uint64, raw []byte) error {
	return p.enqueue(true, pending{target: target, seq: seq}, raw, nil)
}
