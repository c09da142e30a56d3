package proxy

import (
	"bytes"
	"context"
	"errors"
	"strconv"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// infoWithSection answers INFO: Redis's own text, with its "# Clients"
// figures describing respguard's clients, plus respguard's "# Respguard"
// section when the sections asked for include it (no argument, "default",
// "all", "everything" or "respguard"), so dashboards that read INFO keep
// working and also see the proxy; that section keeps Redis's own client
// figures (respguard_upstream_connected_clients...).
// While the upstream is unreachable, INFO still answers the "# Respguard"
// section, saying so (respguard_upstream_up:0 and the error); an INFO for
// Redis's sections alone gets the unavailable error.
func (s *session) infoWithSection(ctx context.Context, seq uint64, cmd resp.Command) {
	want := wantsRespguardSection(cmd.Args[1:])
	cmds := [][][]byte{cmd.Args}
	if want && !s.ded.has(modeMulti) { // inside MULTI a second INFO would join the transaction
		cmds = append(cmds, [][]byte{[]byte("INFO"), []byte("clients")})
	}
	replies, err := s.roundTrip(ctx, cmds)
	if err == nil && pool.IsUnavailableReply(replies[0]) {
		// The connection failed under the INFO (Redis just went away): the
		// same answer as when it was already known to be down.
		err = errors.New(string(bytes.TrimPrefix(bytes.TrimRight(replies[0], "\r\n"), []byte("-ERR upstream unavailable: "))))
	}
	if err != nil {
		if !want {
			s.out.local(seq, pool.UnavailableReply(err))
			return
		}
		s.out.local(seq, s.infoReply(appendUpstreamDown(s.srv.appendInfoSection(nil), err), true))
		return
	}
	reply := replies[0]
	body, ok := bulkBody(reply)
	if !ok {
		s.out.Deliver(seq, reply, true)
		return
	}
	text, rewritten := s.srv.clientCounts().rewriteClientsSection(body)
	if !want {
		if rewritten {
			reply = s.infoReply(text, reply[0] == '=')
		}
		s.out.Deliver(seq, reply, true)
		return
	}
	if len(text) > 0 {
		text = append(text, "\r\n"...)
	}
	text = appendField(s.srv.appendInfoSection(text), "respguard_upstream_up", 1)
	if len(replies) > 1 {
		upstream, _ := bulkBody(replies[1])
		text = appendUpstreamClients(text, upstream)
	}
	s.out.Deliver(seq, s.infoReply(text, reply[0] == '='), true)
}

// infoReply encodes INFO text for the session's protocol: in RESP3 a
// verbatim string when verbatim (as Redis 7 answers), else a bulk string.
func (s *session) infoReply(text []byte, verbatim bool) []byte {
	if s.proto >= 3 && verbatim {
		return appendVerbatim(nil, text)
	}
	return resp.AppendBulk(nil, text)
}

// appendUpstreamDown appends the fields that say the upstream is unreachable.
func appendUpstreamDown(dst []byte, err error) []byte {
	dst = appendField(dst, "respguard_upstream_up", 0)
	dst = append(dst, "respguard_upstream_error:"...)
	for _, r := range []byte(err.Error()) {
		if r == '\r' || r == '\n' {
			r = ' '
		}
		dst = append(dst, r)
	}
	return append(dst, '\r', '\n')
}

// bulkBody returns the payload of a "$n" or "=n" (verbatim, minus its "txt:")
// reply.
func bulkBody(reply []byte) ([]byte, bool) {
	kind, n, start, ok := resp.ReplyHeader(reply)
	if !ok || (kind != '$' && kind != '=') || n < 0 || start+int(n) > len(reply) {
		return nil, false
	}
	body := reply[start : start+int(n)]
	if kind == '=' && len(body) >= 4 {
		body = body[4:] // "txt:"
	}
	return body, true
}

func appendVerbatim(dst, text []byte) []byte {
	dst = append(dst, '=')
	dst = strconv.AppendInt(dst, int64(len(text)+4), 10)
	dst = append(dst, "\r\ntxt:"...)
	dst = append(dst, text...)
	return append(dst, '\r', '\n')
}

func wantsRespguardSection(sections [][]byte) bool {
	if len(sections) == 0 {
		return true
	}
	for _, sec := range sections {
		for _, want := range []string{"default", "all", "everything", "respguard"} {
			if equalFold(sec, want) {
				return true
			}
		}
	}
	return false
}

// appendInfoSection appends "# Respguard" with the proxy's own counters.
func (s *Server) appendInfoSection(dst []byte) []byte {
	if s.tel != nil {
		return s.appendClusterSummary(s.tel.AppendInfoSection(dst))
	}
	st := s.poolStats()
	dst = append(dst, "# Respguard\r\n"...)
	dst = appendField(dst, "respguard_connected_clients", s.Connected())
	dst = appendField(dst, "respguard_total_connections_received", s.Accepted())
	dst = appendField(dst, "respguard_rejected_connections", s.Rejected())
	dst = appendField(dst, "respguard_pool_dedicated_conns", int64(st.Total))
	dst = appendField(dst, "respguard_pool_shared_conns", int64(st.Shared))
	return s.appendClusterSummary(dst)
}

// appendClusterSummary appends, in cluster mode, what respguard knows of the
// cluster: shards, slots served, node pools, topology refreshes.
func (s *Server) appendClusterSummary(dst []byte) []byte {
	if s.cluster == nil {
		return dst
	}
	ci := s.cluster.Info()
	dst = append(dst, "respguard_upstream_mode:cluster\r\n"...)
	dst = appendField(dst, "respguard_cluster_shards", int64(ci.Shards))
	dst = appendField(dst, "respguard_cluster_slots_served", int64(ci.SlotsServed))
	dst = appendField(dst, "respguard_cluster_nodes", int64(ci.Nodes))
	dst = appendField(dst, "respguard_cluster_refreshes", int64(ci.Refreshes))
	return appendField(dst, "respguard_cluster_refresh_errors", int64(ci.RefreshErrors))
}

func appendField(dst []byte, name string, v int64) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, '\r', '\n')
}
