package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/respguard/respguard/pool"
	tidwall "github.com/tidwall/resp"
)

// ErrNoPrimary is returned when no sentinel names a primary that confirms
// its role: the sentinels are unreachable, do not know the master name, or
// name a node that is down or not (yet) a primary.
var ErrNoPrimary = errors.New("sentinel: no confirmed primary")

// ErrNotPrimary is a node's ROLE answer other than "master": a sentinel's
// view lagging behind a failover.
var ErrNotPrimary = errors.New("sentinel: node is not a primary")

// Resolution is retried this many rounds, waiting resolveBackoff, doubled
// each round, in between: sentinels agree on a new primary, and the node
// takes its role, a moment apart.
const (
	resolveRounds  = 4
	resolveBackoff = 250 * time.Millisecond
)

// resolve returns the primary's address: a switch message's new address
// when it confirms, otherwise the first address a sentinel names that
// answers ROLE with "master". It retries in bounded rounds; a switch message
// ends the wait between rounds. The error joins the last round's failures.
func (w *Watcher) resolve(ctx context.Context) (string, error) {
	var errs []error
	for round := range resolveRounds {
		if round > 0 && !pause(ctx, resolveBackoff<<(round-1), w.hinted) {
			return "", ctx.Err()
		}
		var addr string
		if addr, errs = w.resolveOnce(ctx, w.takeHint()); addr != "" {
			return addr, nil
		}
	}
	return "", fmt.Errorf("%w for %q: %w", ErrNoPrimary, w.cfg.MasterName, errors.Join(errs...))
}

// resolveOnce tries hint (when set), then asks each sentinel in turn,
// returning the first confirmed primary, or "" and the failures.
func (w *Watcher) resolveOnce(ctx context.Context, hint string) (string, []error) {
	checked := make(map[string]error) // each address is confirmed once per round
	var errs []error
	if hint != "" {
		err := w.confirmOnce(ctx, hint, checked)
		if err == nil {
			return hint, nil
		}
		errs = append(errs, err)
	}
	for _, s := range w.cfg.Addresses {
		addr, err := w.ask(ctx, s)
		if err == nil {
			_, seen := checked[addr]
			if err = w.confirmOnce(ctx, addr, checked); err == nil {
				return addr, nil
			}
			if seen {
				continue // its failure is already listed
			}
		}
		errs = append(errs, err)
	}
	return "", errs
}

// confirmOnce is confirm, remembering outcomes in checked.
func (w *Watcher) confirmOnce(ctx context.Context, addr string, checked map[string]error) error {
	if err, ok := checked[addr]; ok {
		return err
	}
	err := w.confirm(ctx, addr)
	checked[addr] = err
	return err
}

// ask returns the primary's address according to the sentinel at addr.
func (w *Watcher) ask(ctx context.Context, addr string) (string, error) {
	vals, err := pool.NewControl(w.cfg.controlConfig(addr)).Do(ctx,
		[]string{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", w.cfg.MasterName})
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", addr, err)
	}
	reply := vals[1]
	pair := reply.Array()
	switch {
	case reply.Type() == tidwall.Error:
		return "", fmt.Errorf("sentinel %s: %s", addr, reply.String())
	case reply.IsNull() || len(pair) != 2:
		return "", fmt.Errorf("sentinel %s: does not monitor %q", addr, w.cfg.MasterName)
	}
	return net.JoinHostPort(pair[0].String(), pair[1].String()), nil
}

// confirm checks that the node at addr answers ROLE with "master", reaching
// it with the data nodes' credentials and TLS.
func (w *Watcher) confirm(ctx context.Context, addr string) error {
	node := w.node
	node.Address = addr
	vals, err := pool.NewControl(node).Do(ctx, []string{"ROLE"})
	if err != nil {
		return fmt.Errorf("confirm primary %s: %w", addr, err)
	}
	role := vals[1].Array()
	if len(role) == 0 {
		return fmt.Errorf("confirm primary %s: ROLE answered %q", addr, vals[1].String())
	}
	if r := role[0].String(); r != "master" {
		return fmt.Errorf("%w: %s answers ROLE with %q", ErrNotPrimary, addr, r)
	}
	return nil
}

// pause waits d, or until ctx is done or wake (nil: never) is ready,
// reporting whether ctx is still live.
func pause(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
