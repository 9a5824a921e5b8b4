package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/internal/metrics/metricstest"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
)

// scrape GETs /metrics from h and parses the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	fams, err := metricstest.Parse(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	return metricstest.Value(fams, name, want)
}

func want(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, v float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok || got != v {
		t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
	}
}

type fakeStore struct{}

func (fakeStore) Stats(context.Context) (metadata.Stats, error) {
	return metadata.Stats{Repositories: 2, Manifests: 3, Tags: 4, Blobs: 5, BlobBytes: 600}, nil
}

type fakeQueue struct{ metadata.EventQueue }

func (fakeQueue) PendingEvents(context.Context) (map[string]int64, error) {
	return map[string]int64{"hook": 7}, nil
}

func TestCollectors(t *testing.T) {
	uploads := registry.NewUploads()
	m := New(Options{
		Build:     Build{Version: "1.2.3", Commit: "abc", GoVersion: "go1.x"},
		Stats:     fakeStore{},
		Queue:     fakeQueue{},
		Endpoints: []string{"hook", "idle"},
		Uploads:   uploads,
		Upstreams: func() []UpstreamState {
			return []UpstreamState{{"hub", "up", &RateLimit{Remaining: 99, Limit: 100}}, {"ghcr", "down", nil}, {"new", "unknown", nil}}
		},
	})
	m.Request(registry.RequestStats{Family: registry.FamilyManifest, Method: "GET", Status: 200, Duration: time.Millisecond, BytesOut: 100, Repository: "secret/app"})
	m.Request(registry.RequestStats{Family: registry.FamilyBlob, Method: "BREW", Status: 405, Duration: time.Millisecond})
	m.Request(registry.RequestStats{Family: registry.FamilyUpload, Method: "PATCH", Status: 202, BytesIn: 1000})
	m.CacheLookup("hub", "blob", true)
	m.CacheLookup("hub", "blob", false)
	m.UpstreamRequest("hub", 20*time.Millisecond, "")
	m.UpstreamRequest("hub", time.Second, "rate_limited")
	m.UpstreamBytes("hub", 4096)
	m.Authentication("basic", false)
	m.Authentication("basic", true)
	now := time.Now()
	m.Collected(&gc.Report{Started: now.Add(-time.Second), Finished: now, Blobs: []gc.Item{{Ref: "sha256:x", Size: 512}}}, nil)
	m.Collected(nil, gc.ErrLocked)
	m.Delivered("hook", 3)
	m.Failed("hook", 1)
	m.Dropped(2)

	fams := scrape(t, m.Handler())
	want(t, fams, "berth_http_requests_total", map[string]string{"route": "manifest", "method": "GET", "code": "200"}, 1)
	want(t, fams, "berth_http_requests_total", map[string]string{"route": "blob", "method": "other", "code": "405"}, 1)
	want(t, fams, "berth_http_request_duration_seconds", map[string]string{"route": "manifest", "method": "GET"}, 1)
	want(t, fams, "berth_http_response_bytes_total", map[string]string{"route": "manifest"}, 100)
	want(t, fams, "berth_http_request_bytes_total", map[string]string{"route": "upload"}, 1000)
	for _, f := range fams {
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if l.GetValue() == "secret/app" || l.GetValue() == "BREW" {
					t.Errorf("%s carries the label %s=%s", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	want(t, fams, "berth_cache_requests_total", map[string]string{"registry": "hub", "kind": "blob", "result": "hit"}, 1)
	want(t, fams, "berth_cache_requests_total", map[string]string{"registry": "hub", "kind": "blob", "result": "miss"}, 1)
	want(t, fams, "berth_upstream_request_duration_seconds", map[string]string{"registry": "hub"}, 2)
	want(t, fams, "berth_upstream_errors_total", map[string]string{"registry": "hub", "reason": "rate_limited"}, 1)
	want(t, fams, "berth_upstream_bytes_total", map[string]string{"registry": "hub"}, 4096)
	want(t, fams, "berth_upstream_ratelimit_remaining", map[string]string{"registry": "hub"}, 99)
	want(t, fams, "berth_upstream_ratelimit_limit", map[string]string{"registry": "hub"}, 100)
	if _, ok := value(fams, "berth_upstream_ratelimit_remaining", map[string]string{"registry": "ghcr"}); ok {
		t.Error("an upstream that announced no rate limit has a ratelimit series")
	}
	want(t, fams, "berth_upstream_up", map[string]string{"registry": "hub"}, 1)
	want(t, fams, "berth_upstream_up", map[string]string{"registry": "ghcr"}, 0)
	if _, ok := value(fams, "berth_upstream_up", map[string]string{"registry": "new"}); ok {
		t.Error("an upstream not probed yet has a berth_upstream_up series")
	}
	want(t, fams, "berth_auth_attempts_total", map[string]string{"method": "basic", "result": "failure"}, 1)
	want(t, fams, "berth_auth_attempts_total", map[string]string{"method": "basic", "result": "success"}, 1)
	want(t, fams, "berth_gc_runs_total", map[string]string{"result": "ok"}, 1)
	want(t, fams, "berth_gc_runs_total", map[string]string{"result": "skipped"}, 1)
	want(t, fams, "berth_gc_freed_bytes_total", nil, 512)
	want(t, fams, "berth_gc_removed_total", map[string]string{"kind": "blob"}, 1)
	want(t, fams, "berth_notifications_delivered_total", map[string]string{"endpoint": "hook"}, 3)
	want(t, fams, "berth_notifications_failures_total", map[string]string{"endpoint": "hook"}, 1)
	want(t, fams, "berth_notifications_dropped_total", nil, 2)
	want(t, fams, "berth_notifications_pending", map[string]string{"endpoint": "hook"}, 7)
	want(t, fams, "berth_notifications_pending", map[string]string{"endpoint": "idle"}, 0)
	want(t, fams, "berth_repositories", nil, 2)
	want(t, fams, "berth_manifests", nil, 3)
	want(t, fams, "berth_tags", nil, 4)
	want(t, fams, "berth_blobs", nil, 5)
	want(t, fams, "berth_storage_bytes", nil, 600)
	want(t, fams, "berth_uploads_in_flight", nil, 0)
	want(t, fams, "berth_build_info", map[string]string{"version": "1.2.3", "commit": "abc", "goversion": "go1.x"}, 1)
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Error("the Go runtime's and the process's collectors are missing")
	}
}

func TestRepositoryLabels(t *testing.T) {
	m := New(Options{RepositoryLabels: true})
	m.Request(registry.RequestStats{Family: registry.FamilyManifest, Method: "GET", Status: 200, Repository: "team/app"})
	want(t, scrape(t, m.Handler()), "berth_http_requests_total", map[string]string{"route": "manifest", "repository": "team/app"}, 1)
}

func TestPprof(t *testing.T) {
	srv := httptest.NewServer(New(Options{}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("GET /debug/pprof/goroutine: %d\n%.200s", resp.StatusCode, body)
	}
}
