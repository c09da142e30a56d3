package proxy

import (
	"context"

	"github.com/respguard/respguard/policy/guard"
	"github.com/respguard/respguard/proxy/resp"
)

// SetGuard swaps in new guardrails (nil: none).
func (s *Server) SetGuard(g *guard.Guard) { s.guard.Store(g) }

// guardPlan applies the guardrails to a command about to be forwarded. It
// may rewrite cmd (DEL -> UNLINK script, FLUSHALL ASYNC, XADD MAXLEN), or
// return a rejection. Sizes it does not know are probed on the client's own
// route first, so execution order is kept (see decideByProbing); inside
// MULTI or while streaming nothing is probed (the probe would be queued or
// unanswered).
func (s *session) guardPlan(ctx context.Context, g *guard.Guard, cmd *resp.Command) (decision uint8, reject []byte) {
	plan := g.Plan(cmd.Args, s.work.guardArgs[:0])
	if plan.Action == guard.Probe {
		canProbe := !s.ded.has(modeMulti | modeStreaming)
		if !canProbe {
			return decisionAllowed, nil
		}
		plan = s.decideByProbing(ctx, g, cmd.Args, plan.Probes)
	}
	switch plan.Action {
	case guard.Reject:
		s.guardAction("reject", plan.Reason)
		return decisionGuarded, resp.AppendError(nil, plan.Err)
	case guard.Rewrite:
		s.guardAction("rewrite", plan.Reason)
		s.work.guardArgs = plan.Args[:0]
		cmd.Args, cmd.Raw = plan.Args, nil
		return decisionRewritten, nil
	}
	if plan.Audit {
		s.guardAction("audit", plan.Reason)
		s.srv.log.Warn("guard audit: command would be refused", "client", s.addr, "user", s.userLabel(), "error", plan.Err)
	}
	return decisionAllowed, nil
}

func (s *session) guardAction(action, reason string) {
	if s.srv.tel != nil {
		s.srv.tel.GuardAction(action, reason)
	}
}

// replyElements reads the size a reply's first bytes announce: an
// aggregate's element count (a map counts keys and values), an integer's
// value (HLEN, LLEN... feed the guard's size cache), else -1.
func replyElements(p []byte) int64 {
	kind, n, _, ok := resp.ReplyHeader(p)
	switch {
	case !ok || n < 0:
		return -1
	case kind == '%':
		return 2 * n
	case kind == '*', kind == '~', kind == ':':
		return n
	}
	return -1
}

// Guard returns the guardrails in force (nil: none).
func (s *Server) Guard() *guard.Guard { return s.guard.Load() }
