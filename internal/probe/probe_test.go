package probe

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, answer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, rec.Body)
	}
	return rec.Code, a
}

// errBox holds an error in an atomic.Value, which takes one concrete type.
type errBox struct{ err error }

func TestProbes(t *testing.T) {
	// Checks that time out are not waited for: what they read is atomic.
	var metaErr atomic.Value
	metaErr.Store(errBox{})
	block := make(chan struct{})
	defer close(block)
	var slow atomic.Bool
	h := New([]Check{
		{Name: "storage", Run: func(ctx context.Context) error {
			if slow.Load() {
				select {
				case <-block:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}},
		{Name: "metadata", Run: func(context.Context) error { return metaErr.Load().(errBox).err }},
	}, 50*time.Millisecond, slog.New(slog.DiscardHandler))

	tests := []struct {
		name   string
		setup  func()
		path   string
		code   int
		checks map[string]string
	}{
		{"live", func() {}, "/healthz", 200, nil},
		{"ready", func() {}, "/readyz", 200, map[string]string{"storage": "ok", "metadata": "ok"}},
		{"metadata down", func() { metaErr.Store(errBox{errors.New("dial tcp 10.0.0.1:5432: connection refused")}) }, "/readyz", 503,
			map[string]string{"storage": "ok", "metadata": "error"}},
		{"still live", func() {}, "/healthz", 200, nil},
		{"storage hangs", func() { metaErr.Store(errBox{}); slow.Store(true) }, "/readyz", 503, map[string]string{"storage": "timeout", "metadata": "ok"}},
		{"back", func() { slow.Store(false) }, "/readyz", 200, map[string]string{"storage": "ok", "metadata": "ok"}},
		{"draining", h.SetDraining, "/readyz", 503, map[string]string{"storage": "ok", "metadata": "ok", "server": "shutting down"}},
	}
	for _, tc := range tests {
		tc.setup()
		code, a := get(t, h, tc.path)
		if code != tc.code {
			t.Errorf("%s: GET %s = %d, want %d", tc.name, tc.path, code, tc.code)
		}
		for k, v := range tc.checks {
			if a.Checks[k] != v {
				t.Errorf("%s: check %s = %q, want %q (%+v)", tc.name, k, a.Checks[k], v, a)
			}
		}
		if len(a.Checks) != len(tc.checks) {
			t.Errorf("%s: checks %v, want %v", tc.name, a.Checks, tc.checks)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/readyz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz = %d", rec.Code)
	}
}
