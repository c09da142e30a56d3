package proxy

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/respguard/respguard/pool"
)

// sessionOf returns the server's session for the client whose local address
// is addr.
func sessionOf(t *testing.T, srv *Server, addr string) *session {
	t.Helper()
	// A client's connect completes before respguard accepts it and
	// registers its session: poll (each poll reads the session table).
	var found *session
	pollUntil(t, 10*time.Second, "the session for "+addr, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for s := range srv.sessions {
			if s.addr == addr {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// heapSampler records the largest HeapInuse seen until stopped.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return h
}

func (h *heapSampler) done() uint64 { close(h.stop); h.wg.Wait(); return h.peak.Load() }

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func TestOutputBufferLimitBoundsMemory(t *testing.T) {
	const limit = 32 << 20
	tp := startProxy(t, func(c *Config, _ *pool.Config) { c.Client.OutputBufferLimit = limit })
	ctx := ctxT(t)
	value := strings.Repeat("v", 1<<20)
	if err := tp.direct(t).Set(ctx, "big", value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	ld := startLoad(t, tp.Addr, 2) // other clients, served throughout
	pollUntil(t, 10*time.Second, "load running", func() bool { return ld.v.oks.Load() > 100 })

	rc := tp.raw(t)
	rc.send("PING\r\n")
	expectLines(t, rc, "+PONG")
	s := sessionOf(t, tp.Server, rc.LocalAddr().String())
	before := heapInuse()
	heap := sampleHeap()
	// 150 MB of replies asked for, none read.
	rc.send(strings.Repeat("GET big\r\n", 150))
	pollUntil(t, 30*time.Second, "the client to be closed over its limit", func() bool { return tp.Server.OutputOverflows() == 1 })
	peakHeap := heap.done()

	held := s.out.peakHeld()
	t.Logf("output_buffer_limit %d MB: the outbox held at most %.1f MB; heap in use peaked %.1f MB above the %.1f MB before",
		limit>>20, float64(held)/(1<<20), (float64(peakHeap)-float64(before))/(1<<20), float64(before)/(1<<20))
	if held > limit+2*replyChunk {
		t.Errorf("the outbox held %d bytes under a %d-byte limit", held, limit)
	}
	if growth := int64(peakHeap) - int64(before); growth > 2*limit {
		t.Errorf("heap in use grew by %d bytes for one client under a %d-byte limit", growth, limit)
	}
	// Closed for real, as Redis does, not only dropped from the queue: the
	// client sees the connection end once it reads what reached its socket.
	_ = rc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var rest bytes.Buffer
	if _, err := rest.ReadFrom(rc.r); err != nil {
		t.Fatalf("after %d bytes: %v (want the connection closed)", rest.Len(), err)
	}
	if rest.Len() >= 150<<20 {
		t.Fatal("every reply arrived: the client was not cut off")
	}
	checkLoad(t, ld)
}
