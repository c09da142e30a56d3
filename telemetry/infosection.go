package telemetry

import "strconv"

// AppendInfoSection appends respguard's own INFO section to dst, the text
// of Redis's INFO reply, and returns the extended slice. When dst is not
// empty a blank line separates the sections, as Redis does. Field names are
// prefixed "respguard_" so tools that flatten INFO into one map do not
// confuse them with Redis's own fields:
//
//	# Respguard
//	respguard_connected_clients:3
//	...
//
// Pool fields appear only once ObservePool was called.
func (t *Telemetry) AppendInfoSection(dst []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "# Respguard\r\n"...)
	dst = appendInfoInt(dst, "respguard_connected_clients", t.connected())
	dst = appendInfoInt(dst, "respguard_total_connections_received", t.count(countAccepted))
	dst = appendInfoInt(dst, "respguard_rejected_connections", t.count(countRejected))
	dst = appendInfoInt(dst, "respguard_output_buffer_overflows", t.count(countOutputOverflow))
	dst = appendInfoInt(dst, "respguard_auth_failures", t.count(countAuthFailure))
	dst = appendInfoInt(dst, "respguard_total_commands_processed", t.count(countCommands))
	dst = appendInfoInt(dst, "respguard_total_error_replies", t.count(countErrorReplies))
	dst = appendInfoInt(dst, "respguard_policy_denials", t.count(countDenials))
	dst = appendInfoInt(dst, "respguard_guard_actions", t.count(countGuardActions))
	dst = appendInfoInt(dst, "respguard_total_net_input_bytes", t.count(countBytesIn))
	dst = appendInfoInt(dst, "respguard_total_net_output_bytes", t.count(countBytesOut))
	s, ok := t.poolStats()
	dst = appendInfoInt(dst, "respguard_upstream_dial_errors", s.DialErrors)
	dst = appendInfoInt(dst, "respguard_upstream_reconnects", s.Reconnects)
	dst = appendInfoInt(dst, "respguard_slowlog_len", int64(t.slowlog.len()))
	if n, ok := t.commandsInFlight(); ok {
		dst = appendInfoInt(dst, "respguard_commands_in_flight", n)
	}
	if ok {
		dst = appendPoolInfo(dst, s)
	}
	return dst
}

func appendPoolInfo(dst []byte, s PoolStats) []byte {
	dst = appendInfoInt(dst, "respguard_pool_total_conns", int64(s.Total+s.Shared))
	dst = appendInfoInt(dst, "respguard_pool_shared_conns", int64(s.Shared))
	dst = appendInfoInt(dst, "respguard_pool_dedicated_conns", int64(s.Total))
	dst = appendInfoInt(dst, "respguard_pool_idle_conns", int64(s.Idle))
	dst = appendInfoInt(dst, "respguard_pool_acquired_conns", int64(s.Acquired))
	dst = appendInfoInt(dst, "respguard_pool_max_conns", int64(s.Max))
	dst = appendInfoInt(dst, "respguard_pool_acquire_count", s.AcquireCount)
	dst = appendInfoInt(dst, "respguard_pool_acquire_wait_usec", s.AcquireWait.Microseconds())
	return dst
}

func appendInfoInt(dst []byte, key string, v int64) []byte {
	dst = append(dst, key...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, "\r\n"...)
}
