package notifications

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// receiver is a webhook endpoint on loopback that records what it gets
// and answers with status.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	bodies [][]byte
	hdrs   []http.Header
	events []Event
	got    chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{status: http.StatusOK, got: make(chan struct{}, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		status := rc.status
		if status == http.StatusOK {
			rc.bodies = append(rc.bodies, body)
			rc.hdrs = append(rc.hdrs, r.Header.Clone())
			var env Envelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Errorf("envelope: %v\n%s", err, body)
			}
			rc.events = append(rc.events, env.Events...)
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
		if status == http.StatusOK {
			rc.got <- struct{}{}
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setStatus(s int) {
	rc.mu.Lock()
	rc.status = s
	rc.mu.Unlock()
}

// waitEvents waits until n events arrived and returns them.
func (rc *receiver) waitEvents(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		rc.mu.Lock()
		have := len(rc.events)
		out := append([]Event(nil), rc.events...)
		rc.mu.Unlock()
		if have >= n {
			return out
		}
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("%d events arrived within 20s, want %d: %+v", have, n, out)
		}
	}
}

// env is a registry with notifications, served on loopback.
type env struct {
	url  string
	meta *sqlite.Store
	n    *Notifier
	stop func()
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	meta, err := sqlite.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := storage.New(inmemory.New())
	log := slog.New(slog.DiscardHandler)
	n, err := New(cfg, meta, Options{Addr: "127.0.0.1:5000", Logger: log, PollInterval: 50 * time.Millisecond, UserAgent: "berth-test"})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(blobs, gc.Guard(meta, blobs), registry.Options{Notifier: n, Logger: log})
	srv := httptest.NewServer(registry.Handler(reg, registry.HandlerOptions{Logger: log}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Run(ctx)
		close(done)
	}()
	e := &env{url: srv.URL, meta: meta, n: n}
	e.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		srv.Close()
	})
	t.Cleanup(func() {
		e.stop()
		meta.Close()
	})
	return e
}

func do(t *testing.T, method, url, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "test-client/1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d", method, url, resp.Status, want)
	}
	return resp
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// push pushes a blob and an image manifest tagged tag to repo, and returns
// their digests and the manifest.
func push(t *testing.T, base, repo, tag string) (digest.Digest, digest.Digest, []byte) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := digest.FromBytes(cfg)
	do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+cd.String(), "application/octet-stream", cfg, http.StatusCreated)
	m := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cd.String() + `","size":` + strconv.Itoa(len(cfg)) + `},"layers":[]}`)
	do(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, ociManifest, m, http.StatusCreated)
	return cd, digest.FromBytes(m), m
}

// TestEnvelope pushes, pulls and deletes through the registry and checks
// the events an endpoint gets: distribution's envelope, every field, and
// a signature that verifies.
func TestEnvelope(t *testing.T) {
	rc := newReceiver(t)
	secret := "s3cret"
	e := newEnv(t, Config{Endpoints: []Endpoint{{Name: "hook", URL: rc.srv.URL + "/events?token=abc", Secret: secret,
		Headers: map[string][]string{"Authorization": {"Bearer xyz"}}, MaxEvents: 10}}})

	cd, md, m := push(t, e.url, "team/app", "v1")
	do(t, http.MethodGet, e.url+"/v2/team/app/manifests/v1", "", nil, http.StatusOK)
	do(t, http.MethodHead, e.url+"/v2/team/app/manifests/v1", "", nil, http.StatusOK) // a HEAD is no pull
	do(t, http.MethodGet, e.url+"/v2/team/app/blobs/"+cd.String(), "", nil, http.StatusOK)
	do(t, http.MethodDelete, e.url+"/v2/team/app/manifests/v1", "", nil, http.StatusAccepted)
	do(t, http.MethodPost, e.url+"/v2/other/blobs/uploads/?mount="+cd.String()+"&from=team/app", "", nil, http.StatusCreated)

	evs := rc.waitEvents(t, 6)
	type key struct{ action, repo, digest, tag string }
	var got []key
	for _, ev := range evs {
		got = append(got, key{ev.Action, ev.Target.Repository, ev.Target.Digest.String(), ev.Target.Tag})
	}
	want := map[key]bool{
		{"push", "team/app", cd.String(), ""}:   true,
		{"push", "team/app", md.String(), "v1"}: true,
		{"pull", "team/app", md.String(), "v1"}: true,
		{"pull", "team/app", cd.String(), ""}:   true,
		{"delete", "team/app", "", "v1"}:        true,
		{"mount", "other", cd.String(), ""}:     true,
	}
	for _, k := range got {
		if !want[k] {
			t.Errorf("unexpected event %+v", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("missing event %+v", k)
	}

	ids := map[string]bool{}
	for _, ev := range evs {
		if ev.ID == "" || ids[ev.ID] {
			t.Errorf("event id %q empty or repeated", ev.ID)
		}
		ids[ev.ID] = true
		if ev.Timestamp.IsZero() || time.Since(ev.Timestamp) > time.Minute {
			t.Errorf("timestamp %v", ev.Timestamp)
		}
		if ev.Request.ID == "" || ev.Request.Addr == "" || ev.Request.Host == "" || ev.Request.UserAgent != "test-client/1" {
			t.Errorf("request record %+v", ev.Request)
		}
		if ev.Source.InstanceID != e.n.InstanceID() || !strings.HasSuffix(ev.Source.Addr, ":5000") {
			t.Errorf("source record %+v", ev.Source)
		}
		switch {
		case ev.Action == "push" && ev.Target.Tag == "v1":
			if ev.Target.MediaType != ociManifest || ev.Target.Size != int64(len(m)) || ev.Target.Length != ev.Target.Size ||
				ev.Target.URL != e.url+"/v2/team/app/manifests/"+md.String() || ev.Request.Method != "PUT" {
				t.Errorf("manifest push event %+v", ev)
			}
		case ev.Action == "mount":
			if ev.Target.FromRepository != "team/app" || ev.Target.URL != e.url+"/v2/other/blobs/"+cd.String() {
				t.Errorf("mount event %+v", ev)
			}
		}
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, body := range rc.bodies {
		h := rc.hdrs[i]
		if h.Get("Content-Type") != MediaType || h.Get("Authorization") != "Bearer xyz" || h.Get("User-Agent") != "berth-test" {
			t.Errorf("request headers %v", h)
		}
		if sig := h.Get(SignatureHeader); !Verify([]byte(secret), body, sig) {
			t.Errorf("signature %q does not verify the body", sig)
		}
		if Verify([]byte("wrong"), body, h.Get(SignatureHeader)) {
			t.Error("the signature verifies with another secret")
		}
	}
}

// TestFiltersAndRetries checks the events and repositories filters, and
// that events an endpoint refused are sent again, each once, when it
// takes them.
func TestFiltersAndRetries(t *testing.T) {
	pushes, all := newReceiver(t), newReceiver(t)
	all.setStatus(http.StatusServiceUnavailable)
	e := newEnv(t, Config{Endpoints: []Endpoint{
		{Name: "pushes", URL: pushes.srv.URL, Events: []string{"push"}, Repositories: []string{"team/**"}},
		{Name: "all", URL: all.srv.URL, Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	}})
	push(t, e.url, "team/app", "v1")
	push(t, e.url, "elsewhere", "v1")
	do(t, http.MethodGet, e.url+"/v2/team/app/manifests/v1", "", nil, http.StatusOK)

	evs := pushes.waitEvents(t, 2)
	for _, ev := range evs {
		if ev.Action != "push" || ev.Target.Repository != "team/app" {
			t.Errorf("the filtered endpoint got %s of %s", ev.Action, ev.Target.Repository)
		}
	}
	// The failing endpoint's events wait in the queue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := e.meta.PendingEvents(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if p["all"] == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %v, want 5 for all", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	all.setStatus(http.StatusOK)
	got := all.waitEvents(t, 5)
	e.stop() // a delivery under way finishes

	all.mu.Lock()
	defer all.mu.Unlock()
	if len(all.events) != 5 {
		t.Errorf("the endpoint got %d events, want each of the 5 once: %+v", len(all.events), got)
	}
	seen := map[string]bool{}
	for _, ev := range all.events {
		if seen[ev.ID] {
			t.Errorf("event %s delivered twice", ev.ID)
		}
		seen[ev.ID] = true
	}
	p, _ := e.meta.PendingEvents(context.Background())
	if len(p) != 0 {
		t.Errorf("pending after delivery: %v", p)
	}
}

// TestMaxPendingBoundsAFailingEndpoint checks that the queue of an
// endpoint that keeps failing keeps its newest maxPending events, which are
// delivered once it answers again.
func TestMaxPendingBoundsAFailingEndpoint(t *testing.T) {
	rc := newReceiver(t)
	rc.setStatus(http.StatusServiceUnavailable)
	e := newEnv(t, Config{Endpoints: []Endpoint{
		{Name: "down", URL: rc.srv.URL, Events: []string{"push"}, MaxPending: 2, Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	}})
	for _, tag := range []string{"v1", "v2", "v3"} {
		push(t, e.url, "team/app", tag) // a blob push and a manifest push each
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := e.meta.PendingEvents(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if p["down"] == 2 {
			break
		}
		if p["down"] < 2 || time.Now().After(deadline) {
			t.Fatalf("pending %v, want the queue of down trimmed to 2", p)
		}
		time.Sleep(10 * time.Millisecond) // the pace of asking again, not a synchronisation
	}
	rc.setStatus(http.StatusOK)
	got := rc.waitEvents(t, 2)
	e.stop()
	if len(got) != 2 || got[1].Target.Tag != "v3" || got[0].Target.Tag != "" {
		t.Errorf("delivered after the trim: %+v; want the newest two (v3's blob, then its manifest)", got)
	}
}

// TestDropsRemovedEndpoints checks that events of an endpoint no longer
// configured are dropped at start, and the others kept.
func TestDropsRemovedEndpoints(t *testing.T) {
	meta, err := sqlite.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(meta.EnqueueEvents(t.Context(), metadata.Event{Endpoint: "gone", Payload: []byte(`{}`)},
		metadata.Event{Endpoint: "kept", Payload: []byte(`{}`)}))
	rc := newReceiver(t)
	rc.setStatus(http.StatusInternalServerError)
	n, err := New(Config{Endpoints: []Endpoint{{Name: "kept", URL: rc.srv.URL}}}, meta, Options{Logger: slog.New(slog.DiscardHandler)})
	must(err)
	n.dropUnknown(t.Context())
	p, err := meta.PendingEvents(t.Context())
	must(err)
	if len(p) != 1 || p["kept"] != 1 {
		t.Errorf("pending %v, want kept only", p)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Endpoint{Name: "a", URL: "https://hooks.example/x"}
	tests := []struct {
		name string
		e    []Endpoint
		want string
	}{
		{"valid", []Endpoint{ok, {Name: "b", URL: "http://127.0.0.1:9/", Events: []string{"push", "pull"}, Repositories: []string{"team/**"}}}, ""},
		{"no name", []Endpoint{{URL: ok.URL}}, "endpoints[0].name: required"},
		{"bad name", []Endpoint{{Name: "a b", URL: ok.URL}}, `name "a b"`},
		{"twice", []Endpoint{ok, ok}, "another endpoint has it"},
		{"no url", []Endpoint{{Name: "a"}}, "url"},
		{"ftp", []Endpoint{{Name: "a", URL: "ftp://x/"}}, "want an http(s) URL"},
		{"event", []Endpoint{{Name: "a", URL: ok.URL, Events: []string{"pushed"}}}, `events: "pushed"`},
		{"glob", []Endpoint{{Name: "a", URL: ok.URL, Repositories: []string{"Team/*"}}}, "repositories:"},
		{"timeout", []Endpoint{{Name: "a", URL: ok.URL, Timeout: time.Hour}}, "timeout 1h0m0s"},
		{"maxEvents", []Endpoint{{Name: "a", URL: ok.URL, MaxEvents: 1000}}, "maxEvents 1000"},
		{"maxPending", []Endpoint{{Name: "a", URL: ok.URL, MaxPending: -1}}, "maxPending -1"},
		{"backoffs", []Endpoint{{Name: "a", URL: ok.URL, Backoff: time.Minute, MaxBackoff: time.Second}}, "maxBackoff"},
		{"secrets", []Endpoint{{Name: "a", URL: ok.URL, Secret: "x", SecretFile: "f"}}, "not both"},
		{"header", []Endpoint{{Name: "a", URL: ok.URL, Headers: map[string][]string{"X Bad": {"1"}}}}, "header name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{Endpoints: tc.e}.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"events":[]}`)
	// The HMAC-SHA256 of body with key "key", computed independently
	// (Python's hmac module).
	const want = "sha256=42bcfd9fc3529e704b0e5288644858c732f827e2f9c0a52ab4a93716e846296d"
	if got := Sign([]byte("key"), body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if !Verify([]byte("key"), body, want) {
		t.Error("Verify refuses a good signature")
	}
	if Verify([]byte("key"), []byte(`{}`), want) || Verify([]byte("other"), body, want) || Verify([]byte("key"), body, want[:20]) {
		t.Error("Verify accepts a signature of another body, key or a truncated one")
	}
}
