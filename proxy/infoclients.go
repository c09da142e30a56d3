package proxy

import (
	"bytes"
	"strconv"
	"time"
)

// clientCounts are INFO's client figures for respguard's own clients.
type clientCounts struct {
	connected, blocked, tracking, pubsub, max int
}

// clientCounts counts the server's clients by state.
func (s *Server) clientCounts() clientCounts {
	c := clientCounts{max: s.cfg.Client.MaxClients}
	now := time.Now()
	for _, sess := range s.clients() {
		st := sess.state(now)
		c.connected++
		c.blocked += boolInt(st.blocked)
		c.tracking += boolInt(st.tracking)
		c.pubsub += boolInt(st.pubsub())
	}
	return c
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rewriteClientsSection returns a copy of INFO text whose "# Clients"
// figures (connected_clients, maxclients, blocked_clients,
// tracking_clients, pubsub_clients: added after tracking_clients when
// Redis does not report it) are c's; rewritten is false when the text has
// none of them.
func (c clientCounts) rewriteClientsSection(text []byte) (out []byte, rewritten bool) {
	values := map[string]int{"connected_clients": c.connected, "maxclients": c.max,
		"blocked_clients": c.blocked, "tracking_clients": c.tracking, "pubsub_clients": c.pubsub}
	hasPubsub := bytes.Contains(text, []byte("\npubsub_clients:"))
	out = make([]byte, 0, len(text)+32)
	for len(text) > 0 {
		line, rest, found := bytes.Cut(text, []byte("\r\n"))
		text = rest
		name, _, isField := bytes.Cut(line, []byte(":"))
		v, ours := values[string(name)]
		if isField && ours {
			out = strconv.AppendInt(append(append(out, name...), ':'), int64(v), 10)
			rewritten = true
		} else {
			out = append(out, line...)
		}
		if found {
			out = append(out, "\r\n"...)
		}
		if isField && string(name) == "tracking_clients" && !hasPubsub {
			if !found {
				out = append(out, "\r\n"...)
			}
			out = appendField(out, "pubsub_clients", int64(c.pubsub))
		}
	}
	return out, rewritten
}

// upstreamClientFields are the "# Clients" figures of Redis itself that
// the "# Respguard" section repeats, as respguard_upstream_<name>.
var upstreamClientFields = []string{"connected_clients", "blocked_clients", "tracking_clients", "pubsub_clients", "maxclients"}

// appendUpstreamClients appends Redis's own client figures, read from its
// INFO clients text, to the "# Respguard" section.
func appendUpstreamClients(dst, upstream []byte) []byte {
	for _, line := range bytes.Split(upstream, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		for _, f := range upstreamClientFields {
			if string(name) == f {
				dst = append(append(append(append(dst, "respguard_upstream_"...), name...), ':'), value...)
				dst = append(dst, "\r\n"...)
			}
		}
	}
	return dst
}
