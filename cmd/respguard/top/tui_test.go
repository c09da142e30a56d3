package top

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
)

// snapScreen copies the simulation screen's text after every Show, in the
// drawing goroutine: tcell's GetContents hands out the live cell slice.
type snapScreen struct {
	tcell.SimulationScreen
	mu   sync.Mutex // guards text
	text string
}

func (s *snapScreen) Show() {
	s.SimulationScreen.Show()
	cells, w, _ := s.GetContents()
	var b strings.Builder
	for i, c := range cells {
		if len(c.Runes) > 0 {
			b.WriteRune(c.Runes[0])
		} else {
			b.WriteByte(' ')
		}
		if (i+1)%w == 0 {
			b.WriteByte('\n')
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.text = b.String()
}

func (s *snapScreen) Text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.text
}

func newSnapScreen(t *testing.T) *snapScreen {
	sim := tcell.NewSimulationScreen("UTF-8")
	if err := sim.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Fini)
	sim.SetSize(80, 24)
	return &snapScreen{SimulationScreen: sim}
}

// waitScreen polls the screen until it contains want (the live view draws
// from its own goroutine).
func waitScreen(t *testing.T, s *snapScreen, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Text(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("screen never showed %q:\n%s", want, s.Text())
		}
		time.Sleep(10 * time.Millisecond) // polling the screen, not waiting for an event
	}
}

func TestLiveViewSortsOnKeysAndQuits(t *testing.T) {
	admin := newFakeAdmin(t, 1000)
	screen := newSnapScreen(t)
	l := newLive(NewSource(admin.srv.URL), Options{Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.run(ctx, screen) }()
	t.Cleanup(func() { cancel(); <-done }) // before the screen's Fini

	waitScreen(t, screen, "sort: ops/s")
	admin.set(1000, 1000) // traffic: rows appear from the next sample on
	waitScreen(t, screen, "hgetall")
	for key, want := range map[rune]string{'p': "sort: p99", 'e': "sort: errors", 'n': "sort: name", 's': "sort: ops/s"} {
		screen.InjectKey(tcell.KeyRune, key, tcell.ModNone)
		waitScreen(t, screen, want)
	}
	if text := screen.Text(); !strings.Contains(text, Help) || strings.Count(text, "\n") != 24 {
		t.Errorf("screen:\n%s", text)
	}
	screen.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("q did not quit")
	}
}

func TestLiveViewShowsFetchErrors(t *testing.T) {
	admin := newFakeAdmin(t, 1000)
	screen := newSnapScreen(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := newLive(NewSource(admin.srv.URL), Options{Interval: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- l.run(ctx, screen) }()
	t.Cleanup(func() { cancel(); <-done }) // before the screen's Fini
	waitScreen(t, screen, "sort: ops/s")
	admin.srv.Close()
	waitScreen(t, screen, "error: ")
	waitScreen(t, screen, "sort: ops/s") // the last good sample stays on screen
}
