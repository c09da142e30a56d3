package guard

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Handler serves the tables as JSON: a request whose path ends in
// "/bigkeys" gets {"by_elements": [...], "by_bytes": [...]}, one ending in
// "/hotkeys" gets [...] (KeyStat objects, biggest or hottest first). Mount it
// at /debug/bigkeys and /debug/hotkeys. Other paths are 404, methods other
// than GET and HEAD 405.
func (g *Guard) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var body any
		switch {
		case strings.HasSuffix(r.URL.Path, "/bigkeys"):
			body = struct {
				ByElements []KeyStat `json:"by_elements"`
				ByBytes    []KeyStat `json:"by_bytes"`
			}{g.BigKeys(), g.BigKeysByBytes()}
		case strings.HasSuffix(r.URL.Path, "/hotkeys"):
			body = g.HotKeys()
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body) // a write error means the client went away
	})
}
