package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/respguard/respguard/pool"
	"github.com/respguard/respguard/proxy/resp"
)

// replication is a client's link to Redis as a replica (redis-cli --rdb,
// redis-cli --replica): a connection of its own, dialed at the client's
// first REPLCONF or at SYNC/PSYNC, that carries the REPLCONF handshake with
// Redis's own replies and then, from SYNC or PSYNC on, copies Redis's bytes
// raw to the client (the RDB payload is a bulk without a trailing CRLF,
// then the replication stream) and the client's REPLCONF commands to Redis,
// until either side ends. The client's socket then
// leaves the request parser and the outbox's writer for good.
//
// conn and rd are reader-goroutine state. handedOver is read by the
// session's writer goroutine (and CLIENT LIST) and set before the writer is
// asked to stop: from then on the copier owns the client socket and closes
// it.
type replication struct {
	conn       net.Conn          // nil: none dialed yet
	rd         *resp.ReplyReader // reads the handshake's replies on conn
	handedOver atomic.Bool
}

// replication returns the session's replication link, made if it has none.
// Reader goroutine.
func (s *session) replication() *replication {
	r := s.repl.Load()
	if r == nil {
		r = &replication{}
		s.repl.Store(r)
	}
	return r
}

// replicaHandedOver reports whether the client's socket belongs to a
// replication relay (see replicate). Any goroutine.
func (s *session) replicaHandedOver() bool {
	r := s.repl.Load()
	return r != nil && r.handedOver.Load()
}

// close closes the link's connection, if the handshake left one open.
// Reader-goroutine only.
func (r *replication) close() {
	if r.conn != nil && !r.handedOver.Load() {
		r.conn.Close()
		r.conn = nil
	}
}

// mayReplicate reports whether policy lets the client run SYNC or PSYNC,
// the only reason to carry its REPLCONF handshake to Redis.
func (s *session) mayReplicate() bool {
	if s.srv.cluster != nil {
		return false
	}
	pol := s.srv.policy.Load()
	return pol.Check(s.user, [][]byte{[]byte("SYNC")}).Forward() ||
		pol.Check(s.user, [][]byte{[]byte("PSYNC"), []byte("?"), []byte("-1")}).Forward()
}

// replconf answers REPLCONF. ACK and GETACK get no reply, as from Redis
// for a client that is not a replica. The rest (capa, rdb-only,
// listening-port...) go to Redis over the client's replication link, when
// the client may go on to SYNC; otherwise respguard refuses them.
func (s *session) replconf(ctx context.Context, seq uint64, cmd resp.Command) {
	if len(cmd.Args) > 1 && (equalFold(cmd.Args[1], "ack") || equalFold(cmd.Args[1], "getack")) {
		s.out.local(seq, nil)
		return
	}
	if !s.mayReplicate() {
		s.out.local(seq, resp.AppendError(nil, "ERR respguard: 'replconf' is a replica's command; connect replicas to Redis directly"))
		return
	}
	reply, err := s.replicationRoundTrip(ctx, cmd)
	if err != nil {
		s.replication().close()
		reply = pool.UnavailableReply(err)
	}
	s.out.local(seq, reply)
}

// replicationRoundTrip sends cmd over the replication link, dialing it
// first if needed, and returns Redis's one reply.
func (s *session) replicationRoundTrip(ctx context.Context, cmd resp.Command) ([]byte, error) {
	if err := s.dialReplication(ctx); err != nil {
		return pool.UnavailableReply(err), nil
	}
	r := s.replication()
	c := r.conn
	_ = c.SetDeadline(time.Now().Add(controlTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(encoded(cmd)); err != nil {
		return nil, err
	}
	var reply captureReply
	if err := r.rd.ReadReply(&reply); err != nil {
		return nil, err
	}
	if r.rd.Buffered() > 0 {
		return nil, errors.New("redis sent more than one reply to REPLCONF")
	}
	return reply.b, nil
}

// dialReplication dials the replication link unless it is open.
func (s *session) dialReplication(ctx context.Context) error {
	r := s.replication()
	if r.conn != nil {
		return nil
	}
	c, err := s.srv.pool.DialRaw(ctx)
	if err != nil {
		return err
	}
	r.conn, r.rd = c, resp.NewReplyReader(c)
	return nil
}

// encoded returns cmd as it goes over the wire.
func encoded(cmd resp.Command) []byte {
	if cmd.Raw != nil {
		return cmd.Raw
	}
	return resp.AppendCommand(nil, cmd.Args...)
}

// captureReply keeps one whole reply.
type captureReply struct{ b []byte }

func (c *captureReply) WriteReply(p []byte, last bool) { c.b = append(c.b, p...) }

// replicate runs SYNC or PSYNC: once every earlier reply has been written,
// it sends the command over the replication link and relays the stream
// (see relay) until either side ends; the session ends with
// them. Telemetry counts one command, complete when the stream starts. A
// failure to reach Redis is answered as for any command, and the session
// goes on. It returns false when the session is to end.
func (s *session) replicate(ctx context.Context, seq uint64, name string, cmd resp.Command) bool {
	if s.srv.cluster != nil {
		s.out.local(seq, resp.AppendError(nil, "ERR respguard: '"+name+"' is not carried in cluster mode; connect replicas to a node directly"))
		return true
	}
	if !s.out.waitBefore(seq) {
		return false
	}
	if err := s.dialReplication(ctx); err != nil {
		s.out.local(seq, pool.UnavailableReply(err))
		return true
	}
	r := s.replication()
	up := r.conn
	if _, err := up.Write(encoded(cmd)); err != nil {
		r.close()
		s.out.local(seq, pool.UnavailableReply(err))
		return true
	}
	pending := s.rd.Detach() // bytes the client sent after the command
	s.stayUnparked()         // the relay reads the socket from now on
	r.handedOver.Store(true)
	s.out.local(seq, nil)
	s.publish()
	s.out.closeWhenDone() // the writer sends what is due, then stops
	<-s.out.done()
	s.relay(up, pending)
	return false
}

// relay copies Redis's bytes to the client raw, and the client's REPLCONF
// commands to Redis (see replicaToRedis), until either side ends or fails;
// then it closes both. The client side has no
// idle timeout (nor has a replica's in Redis); a client that stops reading
// holds the stream back until Redis's own replica output limit ends it. A
// shutdown's read deadline on the client ends the relay.
func (s *session) relay(up net.Conn, pending []byte) {
	s.releaseInput() // the relay reads the socket from now on
	_ = s.conn.SetWriteDeadline(time.Time{})
	_ = s.conn.SetReadDeadline(time.Time{})
	if s.srv.shuttingDown() { // its deadline may have come before the one cleared
		_ = s.conn.SetReadDeadline(time.Now())
	}
	stop := func() {
		_ = up.Close()
		_ = s.conn.Close()
	}
	down := make(chan struct{})
	go func() {
		defer close(down)
		_, _ = io.Copy(s.conn, up)
		stop()
	}()
	s.replicaToRedis(up, pending)
	stop()
	<-down
}

// replicaToRedis carries what the replica sends once the stream has
// started, pending first, until the client ends or sends anything but
// REPLCONF (ACK, GETACK...), which ends the link unsent. Redis judges a
// command on a replica's connection by that connection's ACL user, which
// here is respguard's upstream user, not the client's; and it drops a
// replica whose command has a reply, which every command but REPLCONF ACK
// has: a replica sends nothing else.
func (s *session) replicaToRedis(up net.Conn, pending []byte) {
	rd := resp.NewRequestReader(io.MultiReader(bytes.NewReader(pending), s.conn), *s.lim)
	for {
		cmd, err := rd.ReadCommand()
		if err != nil || !equalFold(cmd.Args[0], "replconf") {
			return
		}
		if _, err := up.Write(encoded(cmd)); err != nil {
			return
		}
	}
}
