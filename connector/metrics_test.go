package connector

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Metrics that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	requests []string
	bytes    int64
}

func (r *recorder) CacheLookup(string, string, bool) {}
func (r *recorder) UpstreamRequest(reg string, _ time.Duration, failure string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, reg+":"+failure)
}
func (r *recorder) UpstreamBytes(_ string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += n
}

// TestMeteredTransport checks what an upstream request reports: its
// failure class and the bytes read.
func TestMeteredTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, strings.Repeat("x", 1000))
		case "/limited":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/broken":
			w.WriteHeader(http.StatusBadGateway)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	m := &recorder{}
	hc := &http.Client{Transport: &meteredTransport{next: http.DefaultTransport, name: "hub", m: m}}
	for _, p := range []string{"/ok", "/limited", "/broken", "/missing"} {
		resp, err := hc.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	srv.Close()
	if _, err := hc.Get(srv.URL + "/ok"); err == nil {
		t.Fatal("a request to a closed server went through")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	want := []string{"hub:", "hub:rate_limited", "hub:server_error", "hub:", "hub:unreachable"}
	if strings.Join(m.requests, ",") != strings.Join(want, ",") {
		t.Errorf("requests reported %v, want %v (a 404 is an answer)", m.requests, want)
	}
	if m.bytes < 1000 {
		t.Errorf("bytes read %d, want at least 1000", m.bytes)
	}
}
