package guard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandlerServesJSON(t *testing.T) {
	g := newGuard(t, Config{TopK: 3})
	g.Observe("hlen", []byte("h"), 500, 8)
	g.Observe("get", []byte("s"), -1, 4096)
	g.Observe("get", []byte("s"), -1, 4096)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	var big struct {
		ByElements []KeyStat `json:"by_elements"`
		ByBytes    []KeyStat `json:"by_bytes"`
	}
	get(t, srv.URL+"/debug/bigkeys", &big)
	if len(big.ByElements) != 1 || big.ByElements[0].Key != "h" || big.ByElements[0].Elements != 500 {
		t.Fatalf("by_elements = %+v", big.ByElements)
	}
	if len(big.ByBytes) != 2 || big.ByBytes[0].Key != "s" || big.ByBytes[0].Bytes != 4096 {
		t.Fatalf("by_bytes = %+v", big.ByBytes)
	}
	var hot []KeyStat
	get(t, srv.URL+"/debug/hotkeys", &hot)
	if len(hot) != 2 || hot[0].Key != "s" || hot[0].Rate <= hot[1].Rate {
		t.Fatalf("hotkeys = %+v", hot)
	}
	if resp, err := http.Post(srv.URL+"/debug/hotkeys", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %v %v", resp.StatusCode, err)
	}
	if resp, err := http.Get(srv.URL + "/debug/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET other: %v %v", resp.StatusCode, err)
	}
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
