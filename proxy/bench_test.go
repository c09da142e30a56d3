package proxy

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/respguard/respguard/pool/redistest"
)

// BenchmarkProxy measures end-to-end cost per command through respguard to a
// real redis-server, with raw sockets so client overhead stays small:
// 50 connections, pipelines of 1 and 16 GETs.
func BenchmarkProxy(b *testing.B) {
	tp := startProxy(b, nil)
	for _, depth := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=50/pipeline=%d", depth), func(b *testing.B) {
			benchClients(b, tp.Addr, 50, depth)
		})
	}
}

func benchClients(b *testing.B, addr string, clients, depth int) {
	req := []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
	batch := make([]byte, 0, len(req)*depth)
	for range depth {
		batch = append(batch, req...)
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
	for _, c := range conns {
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

// BenchmarkProxyCluster is BenchmarkProxy in cluster mode, in front of a
// one-primary cluster (the same single redis-server work, plus routing by
// slot and the redirect-following wrapper per command).
func BenchmarkProxyCluster(b *testing.B) {
	rc := redistest.StartCluster(b, 1, 0)
	tp := startClusterProxy(b, rc, nil, Options{})
	for _, depth := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=50/pipeline=%d", depth), func(b *testing.B) {
			benchClients(b, tp.Addr, 50, depth)
		})
	}
}
