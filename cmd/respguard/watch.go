package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// watchFile reports changes to path (a removal too: the reload that
// follows reports the file missing). It watches the directory, so editors
// that replace the file and Kubernetes ConfigMap symlink swaps are seen.
// An empty path, or a watch that cannot start, yields a channel that never fires.
func watchFile(ctx context.Context, path string, log *slog.Logger) <-chan struct{} {
	changed := make(chan struct{}, 1)
	if path == "" {
		return changed
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("config file watch unavailable; reload with SIGHUP", "error", err)
		return changed
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		log.Warn("config file watch unavailable; reload with SIGHUP", "error", err)
		return changed
	}
	base := filepath.Base(path)
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-w.Events:
				if filepath.Base(ev.Name) != base && filepath.Base(ev.Name) != "..data" {
					continue
				}
				if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) == 0 {
					continue
				}
				select {
				case changed <- struct{}{}:
				default:
				}
			case err := <-w.Errors:
				log.Warn("config file watch", "error", err)
			}
		}
	}()
	return changed
}
