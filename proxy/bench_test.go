package proxy

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/respguard/respguard/pool/redistest"
)

// BenchmarkProxy measures end-to-end cost per command through respguard to a
// real redis-server, with raw sockets so client overhead stays small:
// 50 connections, pipelines of 1 and 16 GETs, and 1,000 connections
// without pipelining (each upstream read burst then carries replies to
// many clients). Built with -tags lockcount it also reports outbox lock
// acquisitions per command.
func BenchmarkProxy(b *testing.B) {
	tp := startProxy(b, nil)
	for _, w := range []struct{ clients, depth int }{{50, 1}, {50, 16}, {1000, 1}} {
		b.Run(fmt.Sprintf("clients=%d/pipeline=%d", w.clients, w.depth), func(b *testing.B) {
			locks := outboxLocks()
			benchClients(b, tp.Addr, w.clients, w.depth, false)
			if locks >= 0 {
				commands := w.clients * w.depth * (b.N/(w.clients*w.depth) + 1) // as benchClients sends
				b.ReportMetric(float64(outboxLocks()-locks)/float64(commands), "locks/command")
			}
		})
	}
}

// benchClients runs clients connections sending pipelines of depth GETs;
// spread gives each command its own key (spread over a cluster's slots).
func benchClients(b *testing.B, addr string, clients, depth int, spread bool) {
	batchFor := func(client int) []byte {
		var batch []byte
		for i := range depth {
			key := "key"
			if spread {
				key = fmt.Sprintf("key:%d:%d", client, i)
			}
			batch = fmt.Appendf(batch, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
		}
		return batch
	}
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	rounds := b.N/(clients*depth) + 1
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range conns {
		batch := batchFor(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(c)
			for range rounds {
				if _, err := c.Write(batch); err != nil {
					b.Error(err)
					return
				}
				for range depth {
					if _, err := r.ReadSlice('\n'); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkProxyCluster is BenchmarkProxy in cluster mode: in front of a
// one-primary cluster (the same single redis-server work, plus routing by
// slot and the redirect follower per command), and of three primaries with
// every command on its own key (a client's pipeline split over the nodes).
func BenchmarkProxyCluster(b *testing.B) {
	for _, primaries := range []int{1, 3} {
		rc := redistest.StartCluster(b, primaries, 0)
		tp := startClusterProxy(b, rc, nil, Options{})
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("primaries=%d/clients=50/pipeline=%d", primaries, depth), func(b *testing.B) {
				benchClients(b, tp.Addr, 50, depth, primaries > 1)
			})
		}
	}
}

// BenchmarkIdleClients reports the goroutines each idle client costs (after
// one command): its reader only, as replies are written by whoever
// completes them and a writer goroutine lives only while a socket is full.
func BenchmarkIdleClients(b *testing.B) {
	tp := startProxy(b, nil)
	const clients = 200
	var perClient float64
	for b.Loop() {
		conns := make([]net.Conn, clients)
		for i := range conns {
			c, err := net.Dial("tcp", tp.Addr)
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = c
			if _, err := c.Write([]byte("PING\r\n")); err != nil {
				b.Fatal(err)
			}
			if _, err := bufio.NewReader(c).ReadSlice('\n'); err != nil {
				b.Fatal(err)
			}
		}
		with := runtime.NumGoroutine()
		for _, c := range conns {
			c.Close()
		}
		pollUntil(b, 10*time.Second, "the sessions to end", func() bool { return tp.Server.Connected() == 0 })
		perClient = float64(with-runtime.NumGoroutine()) / clients
	}
	b.ReportMetric(perClient, "goroutines/client")
}
