package resp

import (
	"errors"
	"fmt"
)

// ProtocolError is malformed input from a client. Msg is the text Redis uses
// for the same fault (after "ERR "), so the caller can reply and close the
// connection as Redis does.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "ERR Protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// ErrBadReply reports a reply from the upstream that is not valid RESP. The
// connection it came from is in an unknown state and must be closed.
var ErrBadReply = errors.New("resp: malformed reply from upstream")

// ErrTooLarge reports that a client's request does not fit the query buffer
// limit. Redis closes such a client without a reply.
var ErrTooLarge = errors.New("resp: request exceeds the query buffer limit")
