package top

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
)

// RunTerminal shows the live view on the terminal until q, Esc or Ctrl-C,
// or until ctx is done.
func RunTerminal(ctx context.Context, src *Source, opts Options) error {
	screen, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("top: open terminal: %w", err)
	}
	if err := screen.Init(); err != nil {
		return fmt.Errorf("top: init terminal: %w", err)
	}
	defer screen.Fini()
	return newLive(src, opts).run(ctx, screen)
}

// fetched is one Fetch result, handed from the polling goroutine.
type fetched struct {
	sample *Sample
	err    error
}

// live is the terminal view's state, owned by the goroutine in run.
type live struct {
	src       *Source
	interval  time.Duration
	sort      SortKey
	prev, cur *Sample
	err       error // the last fetch's, shown on the screen until one succeeds
}

func newLive(src *Source, opts Options) *live {
	return &live{src: src, interval: opts.Interval, sort: opts.Sort}
}

// run draws on screen, redrawing on every sample, key and resize.
func (l *live) run(ctx context.Context, screen tcell.Screen) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	samples := make(chan fetched)
	go l.poll(ctx, samples)
	events, quit := make(chan tcell.Event), make(chan struct{})
	defer close(quit)
	go screen.ChannelEvents(events, quit)
	l.draw(screen)
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-samples:
			l.update(f)
		case ev := <-events:
			switch ev := ev.(type) {
			case *tcell.EventResize:
				screen.Sync()
			case *tcell.EventKey:
				if l.key(ev) {
					return nil
				}
			}
		}
		l.draw(screen)
	}
}

// poll fetches now and then every interval, until ctx is done.
func (l *live) poll(ctx context.Context, out chan<- fetched) {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		s, err := l.src.Fetch(ctx)
		select {
		case out <- fetched{s, err}:
		case <-ctx.Done():
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (l *live) update(f fetched) {
	l.err = f.err
	if f.sample != nil {
		l.prev, l.cur = l.cur, f.sample
	}
}

// key handles a key press and reports whether to quit.
func (l *live) key(ev *tcell.EventKey) bool {
	switch ev.Key() {
	case tcell.KeyEscape, tcell.KeyCtrlC:
		return true
	case tcell.KeyRune:
	default:
		return false
	}
	switch ev.Rune() {
	case 'q', 'Q':
		return true
	case 's':
		l.sort = l.sort.next()
	case 'o':
		l.sort = ByOps
	case 'p':
		l.sort = ByP99
	case 'e':
		l.sort = ByErrors
	case 'n':
		l.sort = ByName
	}
	return false
}

func (l *live) draw(screen tcell.Screen) {
	w, h := screen.Size()
	screen.Clear()
	var rows []string
	if l.cur == nil {
		rows = []string{"respguard top  " + l.src.Base + "  connecting...", "", Help}
	} else {
		rows = Render(NewView(l.src.Base, l.prev, l.cur, l.sort), w, h)
	}
	if l.err != nil && len(rows) > 1 {
		rows[len(rows)-2] = "error: " + l.err.Error()
	}
	for y, row := range rows {
		screen.PutStrStyled(0, y, row, lineStyle(row, y))
	}
	screen.Show()
}

func lineStyle(row string, y int) tcell.Style {
	switch {
	case y == 0:
		return tcell.StyleDefault.Reverse(true)
	case strings.HasPrefix(row, "error:") || strings.Contains(row, "DOWN") || strings.Contains(row, "breaker OPEN"):
		return tcell.StyleDefault.Foreground(tcell.ColorRed).Bold(true)
	case strings.HasPrefix(row, "COMMAND"), strings.HasPrefix(row, "SLOWEST"), strings.HasPrefix(row, "BIG KEYS"):
		return tcell.StyleDefault.Bold(true)
	}
	return tcell.StyleDefault
}
