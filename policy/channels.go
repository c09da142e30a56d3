package policy

// channelKind says which arguments of a command are Pub/Sub channels that
// channel permissions (&pattern) apply to, as Redis 7.0's
// getChannelsFromCommand does. Unsubscribing is never checked.
type channelKind uint8

const (
	channelsNone     channelKind = iota
	channelsPublish              // args[1] is a channel
	channelsAll                  // args[1:] are channels
	channelsPatterns             // args[1:] are patterns, matched literally
)

func channelKindFor(name string) channelKind {
	switch name {
	case "publish", "spublish":
		return channelsPublish
	case "subscribe", "ssubscribe":
		return channelsAll
	case "psubscribe":
		return channelsPatterns
	}
	return channelsNone
}

// channelArgs returns the index range [from, to) of the channel arguments.
func (k channelKind) channelArgs(argc int) (from, to int) {
	switch k {
	case channelsPublish:
		return 1, min(2, argc)
	case channelsAll, channelsPatterns:
		return 1, argc
	}
	return 0, 0
}
