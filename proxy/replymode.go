package proxy

import "github.com/respguard/respguard/proxy/resp"

// replyMode is the client's CLIENT REPLY setting. respguard keeps it
// itself rather than on an upstream connection, so that it covers the
// replies respguard makes (denials, local answers) exactly as Redis would
// cover them, and the commands keep their shared connections.
type replyMode uint8

const (
	replyOn   replyMode = iota
	replyOff            // CLIENT REPLY OFF: no reply is sent
	replySkip           // CLIENT REPLY SKIP: the next command's reply is not sent
)

// muted reports whether the reply to the command about to run is withheld,
// and consumes a SKIP. As in Redis, CLIENT REPLY ON is always answered, and
// RESET is answered under OFF (it turns replies back on before it replies)
// but not when it is the command a SKIP skips (RESET leaves that skip be).
func (s *session) muted(cls *commandClass, args [][]byte) bool {
	switch s.replyMode {
	case replySkip:
		s.replyMode = replyOn
		return !turnsRepliesOn(cls, args)
	case replyOff:
		return !turnsRepliesOn(cls, args) && cls.name != "reset"
	}
	return false
}

// turnsRepliesOn reports whether the command is CLIENT REPLY ON.
func turnsRepliesOn(cls *commandClass, args [][]byte) bool {
	return cls.changes == changesReplyMode && len(args) == 3 && equalFold(args[2], "on")
}

// clientReply answers CLIENT REPLY ON|OFF|SKIP as Redis does: OFF and SKIP
// have no reply of their own; SKIP under OFF changes nothing.
func (s *session) clientReply(args [][]byte) []byte {
	if len(args) != 3 {
		return wrongArgs("client|reply")
	}
	switch {
	case equalFold(args[2], "on"):
		s.replyMode = replyOn
		return resp.AppendSimple(nil, "OK")
	case equalFold(args[2], "off"):
		s.replyMode = replyOff
	case equalFold(args[2], "skip"):
		if s.replyMode != replyOff {
			s.replyMode = replySkip
		}
	default:
		return resp.AppendError(nil, "ERR syntax error")
	}
	return nil
}

// repliesStreamApart reports whether, on a streaming connection, the
// replies to the client's command can be told from the rest of the stream
// by their type, so that CLIENT REPLY can mute them there (see
// outbox.writePushLocked): in RESP3, where messages and subscription
// replies are pushes, which Redis does not mute; in RESP2 only with no
// subscription (MONITOR's lines are muted like replies) and for a command
// other than the SUBSCRIBE family, whose replies are arrays like messages.
func (s *session) repliesStreamApart(k kind) bool {
	return s.proto == 3 || k != kindSubscribe && k != kindUnsubscribe && !s.subs.active()
}
