package proxy

import (
	"sync"

	"github.com/respguard/respguard/policy"
)

// subKind is a kind of Pub/Sub subscription.
type subKind uint8

const (
	subChannel subKind = iota // SUBSCRIBE
	subPattern                // PSUBSCRIBE
	subShard                  // SSUBSCRIBE
	numSubKinds
)

// subscriptions are the channels, patterns and shard channels a client has
// subscribed to through respguard, so that a policy reload can disconnect
// it when its user may no longer hold one of them, as Redis 7.0 does when
// ACL SETUSER changes a user's channels. The session's reader goroutine
// writes it (note); Server.SetPolicy reads it (revokedBy).
type subscriptions struct {
	mu   sync.Mutex // guards sets
	sets [numSubKinds]map[string]struct{}
}

// note records the effect of a forwarded command on the subscriptions.
// name is the command's lower-case name.
func (s *subscriptions) note(name string, args [][]byte) {
	switch name {
	case "subscribe":
		s.add(subChannel, args[1:])
	case "psubscribe":
		s.add(subPattern, args[1:])
	case "ssubscribe":
		s.add(subShard, args[1:])
	case "unsubscribe":
		s.remove(subChannel, args[1:])
	case "punsubscribe":
		s.remove(subPattern, args[1:])
	case "sunsubscribe":
		s.remove(subShard, args[1:])
	case "reset":
		for k := range numSubKinds {
			s.remove(k, nil)
		}
	}
}

func (s *subscriptions) add(k subKind, names [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sets[k] == nil {
		s.sets[k] = make(map[string]struct{}, len(names))
	}
	for _, n := range names {
		s.sets[k][string(n)] = struct{}{}
	}
}

// remove drops names, or every subscription of kind k when names is empty.
func (s *subscriptions) remove(k subKind, names [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(names) == 0 {
		s.sets[k] = nil
		return
	}
	for _, n := range names {
		delete(s.sets[k], string(n))
	}
}

// active reports whether the client holds any subscription: Redis keeps a
// client in Pub/Sub mode as long as it does.
func (s *subscriptions) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, set := range s.sets {
		if len(set) > 0 {
			return true
		}
	}
	return false
}

// revokedBy returns a subscription u may no longer hold (Redis 7.0's
// ACLKillPubsubClientsIfNeeded: a channel or shard channel must match one
// of u's channel patterns, a pattern must be one of them literally).
func (s *subscriptions) revokedBy(u *policy.User) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, set := range s.sets {
		for name := range set {
			if !u.ChannelAllowed([]byte(name), subKind(k) == subPattern) {
				return name, true
			}
		}
	}
	return "", false
}
