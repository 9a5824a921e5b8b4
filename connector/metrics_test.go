package connector

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRateLimitRemaining(t *testing.T) {
	tests := []struct {
		header string
		want   float64
		ok     bool
	}{
		{"76;w=21600", 76, true},
		{"100", 100, true},
		{" 5 ; w=60", 5, true},
		{"", 0, false},
		{"-1", 0, false},
		{"lots", 0, false},
		{";w=1", 0, false},
		{"+Inf", 0, false},
		{"NaN", 0, false},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.header != "" {
			h.Set("RateLimit-Remaining", tc.header)
		}
		got, ok := rateLimitRemaining(h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("rateLimitRemaining(%q) = %v, %v; want %v, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzRateLimitRemaining: an upstream's header never makes a negative or
// failing gauge value.
func FuzzRateLimitRemaining(f *testing.F) {
	for _, s := range []string{"76;w=21600", "0", "1e400", "NaN", "-0", ";", "+Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Ratelimit-Remaining": {s}}
		if v, ok := rateLimitRemaining(h); ok && (!(v >= 0) || math.IsInf(v, 0)) {
			t.Fatalf("%q gave %v", s, v)
		}
	})
}

// recorder is a Metrics that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	requests []string
	bytes    int64
	remain   float64
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
func (r *recorder) RateLimitRemaining(_ string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remain = v
}

// TestMeteredTransport checks what an upstream request reports: its
// failure class, the bytes read and the rate limit left.
func TestMeteredTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("RateLimit-Remaining", "42;w=21600")
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
	if m.remain != 42 {
		t.Errorf("rate limit remaining %v, want 42", m.remain)
	}
	if m.bytes < 1000 {
		t.Errorf("bytes read %d, want at least 1000", m.bytes)
	}
}
