package pool

import (
	"context"
	"fmt"
	"strconv"

	tidwall "github.com/tidwall/resp"
)

// Unblock ends the blocking commands (BLPOP, XREAD BLOCK, WAIT...) running
// on the pool's connections with the given CLIENT IDs, as if they had timed
// out: each gets its timeout reply, and none takes an element after that.
// It sends one CLIENT UNBLOCK per id over a control connection, so it needs
// the upstream user to be allowed CLIENT UNBLOCK. An id whose command is not
// blocked is left alone. It returns how many were unblocked.
func (p *Pool) Unblock(ctx context.Context, ids ...int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	cmds := make([][]string, len(ids))
	for i, id := range ids {
		cmds[i] = []string{"CLIENT", "UNBLOCK", strconv.FormatInt(id, 10)}
	}
	replies, err := NewControl(p.Config()).Do(ctx, cmds...)
	if err != nil {
		return 0, fmt.Errorf("pool: CLIENT UNBLOCK: %w", err)
	}
	n := 0
	for _, r := range replies[1:] { // after HELLO's
		if r.Type() == tidwall.Error {
			return n, fmt.Errorf("pool: CLIENT UNBLOCK: %s", r.String())
		}
		if r.Integer() == 1 {
			n++
		}
	}
	return n, nil
}
