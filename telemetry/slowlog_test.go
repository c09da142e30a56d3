package telemetry

import (
	"sync"
	"testing"
	"time"
)

func TestSlowlogKeepsTheNewestEntriesUpToMaxLen(t *testing.T) {
	s := newSlowlog(3)
	for i := range 5 {
		s.add(SlowEntry{Command: string(rune('a' + i))})
	}
	got := s.snapshot()
	if len(got) != 3 {
		t.Fatalf("len = %d, want 3", len(got))
	}
	for i, want := range []struct {
		id  uint64
		cmd string
	}{{5, "e"}, {4, "d"}, {3, "c"}} {
		if got[i].ID != want.id || got[i].Command != want.cmd {
			t.Fatalf("entry %d = %d/%q, want %d/%q", i, got[i].ID, got[i].Command, want.id, want.cmd)
		}
	}
}

func TestSlowlogResetKeepsIDsIncreasing(t *testing.T) {
	s := newSlowlog(2)
	s.add(SlowEntry{})
	s.reset()
	s.add(SlowEntry{})
	if got := s.snapshot(); len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("after reset: %+v", got)
	}
}

func TestSlowlogOfZeroLengthIgnoresEntries(t *testing.T) {
	s := newSlowlog(0)
	s.add(SlowEntry{})
	if n := len(s.snapshot()); n != 0 {
		t.Fatalf("len = %d", n)
	}
}

func TestSlowlogIsSafeForConcurrentWritersAndReaders(t *testing.T) {
	const writers, each, maxLen = 8, 200, 16
	s := newSlowlog(maxLen)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				s.add(SlowEntry{Duration: time.Millisecond})
				if n := len(s.snapshot()); n > maxLen {
					t.Errorf("snapshot of %d entries exceeds %d", n, maxLen)
				}
			}
		})
	}
	wg.Wait()
	got := s.snapshot()
	if len(got) != maxLen || got[0].ID != writers*each {
		t.Fatalf("len %d, newest id %d; want %d, %d", len(got), got[0].ID, maxLen, writers*each)
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID != got[i-1].ID-1 {
			t.Fatalf("ids not consecutive newest-first: %d then %d", got[i-1].ID, got[i].ID)
		}
	}
}

func TestCommandDoneFillsTheSlowlogOnlyAboveThreshold(t *testing.T) {
	tel := newTestTelemetry(t, Config{Slowlog: SlowlogConfig{Threshold: 5 * time.Millisecond, MaxLen: 4}}, Options{})
	fast := command("get", time.Millisecond)
	fast.Args, fast.KeyIndexes = args("get", "user:1"), []int{1}
	tel.CommandDone(fast)
	slow := command("keys", 50*time.Millisecond)
	slow.Args, slow.KeyIndexes = args("keys", "user:*"), nil
	slow.ErrPrefix = "ERR"
	tel.CommandDone(slow)
	got := tel.Slowlog()
	if len(got) != 1 {
		t.Fatalf("slowlog = %+v, want only the slow command", got)
	}
	e := got[0]
	if e.Command != "keys" || e.Statement != "KEYS ?" || e.Duration != 50*time.Millisecond || e.Upstream != 25*time.Millisecond ||
		e.User != "app" || e.ClientAddr != "10.0.0.7:51234" || e.DB != 2 || e.Error != "ERR" || !e.Time.Equal(slow.Start) {
		t.Fatalf("entry = %+v", e)
	}
}

func TestSlowlogCopiesAStatementThatAliasesAReusedBuffer(t *testing.T) {
	tel := newTestTelemetry(t, Config{}, Options{})
	buf := []byte("GET user:1")
	c := command("get", time.Second)
	c.Statement = string(buf) // stands for an unsafe.String alias in the proxy
	tel.CommandDone(c)
	copy(buf, "XXXXXXXXXX")
	if got := tel.Slowlog()[0].Statement; got != "GET user:1" {
		t.Fatalf("statement = %q", got)
	}
}
