package proxy

import (
	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// requestLimits are the limits clients' requests are read under, derived
// from the Redis limits at from.
type requestLimits struct {
	from *pool.Limits
	lim  resp.Limits
}

// requestLimits returns the limits a client's next command is read under:
// respguard's client configuration, tightened by Redis's own limits as last
// read (the latest upstream connection set-up, else the start-up probe), so
// that an argument Redis would refuse is refused to its client alone instead
// of making Redis drop a connection other clients share. The pointer stays
// the same until the limits change.
func (s *Server) requestLimits() *resp.Limits {
	up := s.upstreamLimits()
	if c := s.reqLimits.Load(); c != nil && c.from == up {
		return &c.lim
	}
	lim := s.cfg.Client.limits()
	if up.MaxBulkLen > 0 && up.MaxBulkLen < lim.MaxBulkLen {
		lim.MaxBulkLen = up.MaxBulkLen
	}
	lim.MaxArgBuffer = up.QueryBufferLimit
	c := &requestLimits{from: up, lim: lim}
	s.reqLimits.Store(c)
	return &c.lim
}

// upstreamLimits returns Redis's limits as last read: by the pool's latest
// connection set-up or, before any (and in cluster mode), by the probe.
func (s *Server) upstreamLimits() *pool.Limits {
	if s.pool != nil {
		if l := s.pool.Limits(); l != nil {
			return l
		}
	}
	return &s.upstreamInfo().Limits
}

// databases is how many logical databases SELECT accepts.
func (s *Server) databases() int {
	if n := s.upstreamLimits().Databases; n > 0 {
		return n
	}
	return s.upstreamInfo().Databases
}
