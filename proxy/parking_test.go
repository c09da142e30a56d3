//go:build linux

package proxy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
)

// testParkAfter parks an idle test client within two of these.
const testParkAfter = 20 * time.Millisecond

// startParkingProxy is startProxy with parking after testParkAfter.
func startParkingProxy(t *testing.T, mutate func(*Config, *pool.Config)) *testProxy {
	t.Helper()
	return startProxy(t, func(c *Config, p *pool.Config) {
		c.Client.ParkAfter = testParkAfter
		if mutate != nil {
			mutate(c, p)
		}
	})
}

// parkedClient connects a raw client that sends one PING and waits until
// respguard has parked its session.
func parkedClient(t *testing.T, tp *testProxy) (*rawConn, *session) {
	t.Helper()
	rc := tp.raw(t)
	rc.send("PING\r\n")
	expectLines(t, rc, "+PONG")
	s := sessionOf(t, tp.Server, rc.LocalAddr().String())
	waitParked(t, s)
	return rc, s
}

// waitParked waits until s has no reader goroutine.
func waitParked(t *testing.T, s *session) {
	t.Helper()
	pollUntil(t, 10*time.Second, "the session parked", func() bool { return s.readerState() == readerParked })
}

func (s *session) readerState() readerState {
	s.parking.mu.Lock()
	defer s.parking.mu.Unlock()
	return s.parking.state
}

func TestParkedClient(t *testing.T) {
	tp := startParkingProxy(t, nil)
	t.Run("a parked client that sends commands gets their replies, then parks again", func(t *testing.T) {
		rc, s := parkedClient(t, tp)
		if tp.Server.Parked() < 1 {
			t.Fatalf("Parked() = %d with a parked client", tp.Server.Parked())
		}
		rc.send("SET park:k v\r\nGET park:k\r\n")
		expectLines(t, rc, "+OK", "$1", "v")
		waitParked(t, s)
		rc.send("GET park:k\r\n")
		expectLines(t, rc, "$1", "v")
	})
	t.Run("a pipelined burst sent to a parked client is answered whole and in order", func(t *testing.T) {
		rc, _ := parkedClient(t, tp)
		const n = 2000
		var burst strings.Builder
		for range n {
			burst.WriteString("*2\r\n$4\r\nINCR\r\n$10\r\npark:burst\r\n")
		}
		rc.send(burst.String())
		for i := 1; i <= n; i++ {
			if got := rc.line(); got != ":"+strconv.Itoa(i) {
				t.Fatalf("reply %d: %q", i, got)
			}
		}
	})
	t.Run("CLIENT LIST shows a parked client with its name, db, age and idle time", func(t *testing.T) {
		rc := tp.raw(t)
		rc.send("CLIENT SETNAME sleeper\r\nSELECT 3\r\nCLIENT ID\r\n")
		expectLines(t, rc, "+OK", "+OK")
		id := strings.TrimPrefix(rc.line(), ":")
		waitParked(t, sessionOf(t, tp.Server, rc.LocalAddr().String()))
		observer := tp.raw(t)
		observer.send("CLIENT LIST ID " + id + "\r\n")
		observer.line() // bulk header
		line := observer.line()
		for _, want := range []string{"id=" + id + " ", " name=sleeper ", " db=3 ", " age=", " idle=", " cmd=client|id "} {
			if !strings.Contains(line, want) {
				t.Fatalf("CLIENT LIST line %q lacks %q", line, want)
			}
		}
	})
}

func TestParkedClientThatHangsUpIsForgotten(t *testing.T) {
	tp := startParkingProxy(t, nil)
	rc, _ := parkedClient(t, tp)
	rc.Close()
	pollUntil(t, 10*time.Second, "the session ended", func() bool {
		return tp.Server.Connected() == 0 && tp.Server.Parked() == 0
	})
}

func TestClientKillOfAParkedClient(t *testing.T) {
	tp := startParkingProxy(t, nil)
	rc, s := parkedClient(t, tp)
	killer := tp.raw(t)
	killer.send(fmt.Sprintf("CLIENT KILL ID %d\r\n", s.id))
	expectLines(t, killer, ":1")
	rc.expectClosed()
	pollUntil(t, 10*time.Second, "the killed session ended", func() bool {
		return tp.Server.Connected() == 1 && tp.Server.Parked() == 0
	})
}

func TestIdleTimeoutClosesAParkedClient(t *testing.T) {
	tp := startParkingProxy(t, func(c *Config, _ *pool.Config) { c.Client.IdleTimeout = testIdleTimeout })
	c := idleTestConn{tp.raw(t).Conn, t}
	sent := c.ping()
	waitParked(t, sessionOf(t, tp.Server, c.LocalAddr().String()))
	c.expectClosedWithin(sent, testIdleTimeout, 2*time.Second)
	pollUntil(t, 10*time.Second, "the session ended", func() bool { return tp.Server.Connected() == 0 })
}

func TestShutdownEndsParkedClients(t *testing.T) {
	tp := startParkingProxy(t, nil)
	var conns []*rawConn
	for range 5 {
		rc, _ := parkedClient(t, tp)
		conns = append(conns, rc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Server.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with parked clients: %v", err)
	}
	for _, rc := range conns {
		rc.expectClosed()
	}
	if n := tp.Server.Connected(); n != 0 {
		t.Fatalf("%d clients left after Shutdown", n)
	}
}

func TestCloseEndsParkedClients(t *testing.T) {
	tp := startParkingProxy(t, nil)
	rc, _ := parkedClient(t, tp)
	tp.Server.Close()
	rc.expectClosed()
	pollUntil(t, 10*time.Second, "the session ended", func() bool { return tp.Server.Connected() == 0 })
}

func TestParkedSubscriberReceivesMessages(t *testing.T) {
	tp := startParkingProxy(t, nil)
	rc := tp.raw(t)
	rc.send("SUBSCRIBE park:news\r\n")
	expectLines(t, rc, "*3", "$9", "subscribe", "$9", "park:news", ":1")
	waitParked(t, sessionOf(t, tp.Server, rc.LocalAddr().String()))
	if n := tp.direct(t).Publish(ctxT(t), "park:news", "hello").Val(); n != 1 {
		t.Fatalf("PUBLISH reached %d subscribers", n)
	}
	expectLines(t, rc, "*3", "$7", "message", "$9", "park:news", "$5", "hello")
	rc.send("UNSUBSCRIBE\r\nPING\r\n")
	expectLines(t, rc, "*3", "$11", "unsubscribe", "$9", "park:news", ":0", "+PONG")
}

func TestClientAwaitingAReplyDoesNotPark(t *testing.T) {
	tp := startParkingProxy(t, nil)
	rc := tp.raw(t)
	rc.send("BLPOP park:nothing 0\r\n")
	s := sessionOf(t, tp.Server, rc.LocalAddr().String())
	waitRedisBlocked(t, tp)
	swept := tp.Server.stats.sweeps.Load()
	pollUntil(t, 10*time.Second, "three more sweeps", func() bool { return tp.Server.stats.sweeps.Load() >= swept+3 })
	if st := s.readerState(); st == readerParked {
		t.Fatal("a client awaiting BLPOP's reply was parked")
	}
	if err := tp.direct(t).RPush(ctxT(t), "park:nothing", "x").Err(); err != nil {
		t.Fatal(err)
	}
	expectLines(t, rc, "*2", "$12", "park:nothing", "$1", "x")
	waitParked(t, s)
}

func TestParkingOff(t *testing.T) {
	tp := startProxy(t, func(c *Config, _ *pool.Config) { c.Client.ParkAfter = -1 })
	rc := tp.raw(t)
	rc.send("PING\r\n")
	expectLines(t, rc, "+PONG")
	s := sessionOf(t, tp.Server, rc.LocalAddr().String())
	if tp.Server.parker != nil {
		t.Fatal("a parker runs with client.park_after negative")
	}
	if st := s.readerState(); st != readerRunning {
		t.Fatalf("reader state %d with parking off", st)
	}
}

func TestShouldRelease(t *testing.T) {
	for _, tc := range []struct {
		name               string
		parks, atLastSweep int64
		sinceRelease       time.Duration
		want               bool
	}{
		{"a wave of a thousand parks that is over releases", 1500, 1500, time.Minute, true},
		{"a wave still parking waits for its end", 1500, 800, time.Minute, false},
		{"ten thousand parks release even while parking goes on", 10000, 9000, time.Minute, true},
		{"a few parks do not release", 999, 999, time.Minute, false},
		{"never twice within releaseEvery", 20000, 20000, releaseEvery - time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shouldRelease(tc.parks, tc.atLastSweep, tc.sinceRelease); got != tc.want {
				t.Fatalf("shouldRelease(%d, %d, %v) = %v", tc.parks, tc.atLastSweep, tc.sinceRelease, got)
			}
		})
	}
}

func TestClientHeldByPauseIsStillWatchedWhileSweepsGoBy(t *testing.T) {
	tp := startParkingProxy(t, nil)
	admin, c := tp.raw(t), tp.raw(t)
	id := clientID(t, c)
	admin.send("CLIENT PAUSE 100000 WRITE\r\n")
	admin.reply()
	c.send("SET held:k v\r\n")
	waitHeld(t, tp, id)
	swept := tp.Server.stats.sweeps.Load()
	pollUntil(t, 10*time.Second, "three more sweeps", func() bool { return tp.Server.stats.sweeps.Load() >= swept+3 })
	c.Close()
	pollUntil(t, 10*time.Second, "the held session to end when its client leaves", func() bool {
		for _, s := range tp.Server.clients() {
			if s.id == uint64(id) {
				return false
			}
		}
		return true
	})
	admin.send("CLIENT UNPAUSE\r\n")
	admin.reply()
}
