package pool

import (
	"context"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

func TestHelloClientID(t *testing.T) {
	tests := []struct {
		name, reply string
		want        int64
	}{
		{"RESP2 array", "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:42\r\n$4\r\nmode\r\n", 42},
		{"RESP3 map", "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$2\r\nid\r\n:1234567\r\n", 1234567},
		{"an error reply has none", "-NOAUTH HELLO must be called with the client already authenticated\r\n", 0},
		{"a value named id is not the key", "*2\r\n$6\r\nserver\r\n$2\r\nid\r\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := helloClientID([]byte(tt.reply)); got != tt.want {
				t.Fatalf("helloClientID = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestStatsCountSharedConnectionsDialErrorsAndReconnects(t *testing.T) {
	rs := redistest.Start(t)
	p, err := New(Config{Address: rs.Addr, RetryBackoff: 20 * time.Millisecond, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	pipe, err := p.Shared(ctx, 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id := pipe.ClientID(); id <= 0 {
		t.Fatalf("ClientID = %d, want Redis's id from HELLO", id)
	}
	if st := p.Stats(); st.Shared != 1 || st.DialErrors != 0 || st.Reconnects != 0 || st.BreakersOpen != 0 {
		t.Fatalf("after the first dial: %+v", st)
	}
	rs.Stop()
	<-pipe.Done()
	if _, err := p.Shared(ctx, 0, 2, 0); err == nil {
		t.Fatal("Shared succeeded with Redis down")
	}
	if st := p.Stats(); st.Shared != 0 || st.DialErrors != 1 || st.BreakersOpen != 1 {
		t.Fatalf("with Redis down: %+v, want no shared connection, 1 dial error, the breaker open", st)
	}
	rs.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := p.Shared(ctx, 0, 2, 0); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reconnect within 10 s")
		}
		time.Sleep(10 * time.Millisecond) // the breaker's backoff runs on the clock
	}
	if st := p.Stats(); st.Shared != 1 || st.Reconnects != 1 || st.BreakersOpen != 0 {
		t.Fatalf("after the restart: %+v, want 1 shared connection, 1 reconnect, the breaker closed", st)
	}
}
