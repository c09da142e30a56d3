package top

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxBody bounds what top reads from one admin response.
const maxBody = 32 << 20

// Source reads Samples from one respguard's admin endpoint.
type Source struct {
	// Base is the admin endpoint's URL, e.g. "http://127.0.0.1:9180".
	Base string
	// Client is used for every request; nil means http.DefaultClient.
	Client *http.Client
}

// NewSource returns a Source for an admin address given as host:port or
// as a URL.
func NewSource(admin string) *Source {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	return &Source{Base: strings.TrimRight(admin, "/")}
}

// Fetch reads /metrics and the slow log, big-key and hot-key tables. Only
// /metrics is required: a respguard without a guard serves empty tables.
func (src *Source) Fetch(ctx context.Context) (*Sample, error) {
	s := &Sample{At: time.Now()}
	body, err := src.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", src.Base, err)
	}
	s.addFamilies(families)
	var big struct {
		ByElements []KeyStat `json:"by_elements"`
	}
	err = errors.Join(
		src.getJSON(ctx, "/debug/slowlog", &s.Slow),
		src.getJSON(ctx, "/debug/bigkeys", &big),
		src.getJSON(ctx, "/debug/hotkeys", &s.HotKeys),
	)
	s.BigKeys = big.ByElements
	return s, err
}

func (src *Source) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.Base+path, nil)
	if err != nil {
		return nil, err
	}
	client := src.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read %s%s: %w", src.Base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s%s: %s", src.Base, path, resp.Status)
	}
	return body, nil
}

// getJSON decodes a JSON table; an empty body (no guard) leaves v as is.
func (src *Source) getJSON(ctx context.Context, path string, v any) error {
	body, err := src.get(ctx, path)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s%s: %w", src.Base, path, err)
	}
	return nil
}
