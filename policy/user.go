package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// User is one ACL user, built from its rules by [New]. It is immutable and
// belongs to the Policy that built it: after a hot reload, look the user up
// again by name in the new Policy (nil or !Enabled means disconnect).
type User struct {
	name      string
	enabled   bool
	noPass    bool
	passwords []string // sha256 hex, in the order added

	allCommands bool     // +@all/allcommands with nothing removed since: unknown commands allowed
	startAll    bool     // the last +@all/-@all was +@all (ACL LIST starts from it)
	allowed     []uint64 // bit set over command ids
	firstArgs   map[int][]string

	allKeys     bool
	keys        []keyPattern
	allChannels bool
	channels    []string

	rules []string // command rules as Redis records them, for ACL LIST

	mirror string // MirrorName(name), precomputed so that Check does not allocate
}

// keyPattern is a ~, %R~, %W~ or %RW~ pattern.
type keyPattern struct {
	pattern string
	perm    keyPerm
}

// keyPerm is the access a key pattern grants.
type keyPerm uint8

const (
	permRead keyPerm = 1 << iota
	permWrite
	permAll = permRead | permWrite
)

// Name returns the user name.
func (u *User) Name() string { return u.name }

// Enabled reports whether the user is "on": only enabled users can log in.
func (u *User) Enabled() bool { return u.enabled }

// NoPass reports whether any password authenticates the user ("nopass").
func (u *User) NoPass() bool { return u.noPass }

// AllCommands reports whether the user may run every command, including
// commands the table does not know (+@all with nothing taken away).
func (u *User) AllCommands() bool { return u.allCommands }

// passwordOK compares password with the user's hashes in constant time per hash.
func (u *User) passwordOK(password string) bool {
	if u.noPass {
		return true
	}
	sum := sha256.Sum256([]byte(password))
	var hexSum [64]byte
	hex.Encode(hexSum[:], sum[:])
	ok := 0
	for _, h := range u.passwords {
		ok |= subtle.ConstantTimeCompare(hexSum[:], []byte(h))
	}
	return ok == 1
}

func (u *User) commandBit(id int) bool {
	return id/64 < len(u.allowed) && u.allowed[id/64]&(1<<(id%64)) != 0
}

func (u *User) setCommandBit(id int, on bool) {
	if on {
		u.allowed[id/64] |= 1 << (id % 64)
	} else {
		u.allowed[id/64] &^= 1 << (id % 64)
		u.allCommands = false
	}
}

// keyAllowed mirrors ACLSelectorCheckKey: some pattern granting at least
// perm must match key.
func (u *User) keyAllowed(key []byte, perm keyPerm) bool {
	for i := range u.keys {
		if u.keys[i].perm&perm == perm && match(u.keys[i].pattern, key) {
			return true
		}
	}
	return false
}

// ChannelAllowed reports whether u may hold a subscription to channel (to
// a pattern when isPattern, as PSUBSCRIBE takes), as Redis 7.0 judges
// existing subscriptions when a user's rules change.
func (u *User) ChannelAllowed(channel []byte, isPattern bool) bool {
	return u.allChannels || u.channelAllowed(channel, isPattern)
}

// channelAllowed mirrors ACLCheckChannelAgainstList: patterns (PSUBSCRIBE)
// must be listed literally, channels must match a pattern.
func (u *User) channelAllowed(channel []byte, isPattern bool) bool {
	for _, p := range u.channels {
		if isPattern && p == string(channel) || !isPattern && match(p, channel) {
			return true
		}
	}
	return false
}
