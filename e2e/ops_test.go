package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/berthhq/berth/internal/metrics/metricstest"
	"github.com/berthhq/berth/internal/testenv"
)

// Tests of what operators run berth with: probes, metrics, webhooks, drains.

// scrapeMetrics GETs /metrics from berth's debug listener and parses the Prometheus text
// format.
func scrapeMetrics(t testing.TB, debugAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Get("http://" + debugAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	fams, err := metricstest.Parse(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the series of family name whose labels include want
// (the sum over every such series), and whether there is one.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	return metricstest.Value(fams, name, want)
}

// getStatus GETs url and returns the status and body.
func getStatus(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOpsReadinessPostgres stops and starts the PostgreSQL server berth keeps its metadata in:
// /readyz turns 503, naming the metadata store, while it is down (/healthz stays 200), and 200
// again once it is back, when berth serves pushes again.
func TestOpsReadinessPostgres(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgresServer(t)
	cfg := writeFile(t, t.TempDir(), "berth.yaml", []byte(fmt.Sprintf("metadata:\n  driver: postgres\n  dsn: %q\n", pg.DSN())))
	srv := startBerth(t, "--config", cfg)
	ready := func(want int, within time.Duration) string {
		t.Helper()
		var code int
		var body string
		if !pollUntil(within, func() bool {
			code, body = getStatus(t, srv.URL()+"/readyz")
			return code == want
		}) {
			t.Fatalf("GET /readyz = %d %s, want %d within %v", code, body, want, within)
		}
		return body
	}
	body := ready(http.StatusOK, 10*time.Second)
	var a struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Checks["metadata"] != "ok" || a.Checks["storage"] != "ok" {
		t.Fatalf("ready answer %s (%v), want metadata and storage ok", body, err)
	}

	pg.Stop()
	body = ready(http.StatusServiceUnavailable, 15*time.Second)
	a.Checks = nil
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Status != "unavailable" ||
		(a.Checks["metadata"] != "error" && a.Checks["metadata"] != "timeout") || a.Checks["storage"] != "ok" {
		t.Errorf("not-ready answer %s (%v), want the metadata check failed and storage ok", body, err)
	}
	if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "postgres://") {
		t.Errorf("the unauthenticated answer names the database: %s", body)
	}
	if code, _ := getStatus(t, srv.URL()+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz while the database is down = %d, want 200: the process serves", code)
	}
	if !srv.log.waitFor(func(s string) bool { return strings.Contains(s, "readiness: check failed") }, 5*time.Second) {
		t.Error("the failing check is not in the log")
	}

	pg.Start()
	ready(http.StatusOK, 30*time.Second)
	c := newClient(t, srv)
	c.pushImage("ops/ready", "v1", newImage(t, "linux", "amd64", 1))
	// Probes are logged at debug level only.
	if strings.Contains(srv.log.String(), "path=/readyz") || strings.Contains(srv.log.String(), "path=/healthz") {
		t.Error("probes are in the access log at info level")
	}
}

// TestOpsMetrics pushes an image, pulls one through a cache and fails a login, then reads the
// matching series from /metrics on the debug listener.
func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	upstream := startBerth(t)
	upImg := newImage(t, "linux", "amd64", 2)
	newClient(t, upstream).pushImage("library/base", "v1", upImg)

	debug := freeAddr(t)
	cfg := securityConfig(t, `  rules:
    - repositories: ["**"]
      groups: [admins]
      actions: ["*"]
      catalog: true
`, fmt.Sprintf(`debug:
  addr: %s
registries:
  - name: up
    type: cache
    prefix: up/
    upstream:
      url: %s
`, debug, upstream.URL()))
	srv := startAuthBerth(t, cfg, nil)
	admin := authClient(t, srv.URL(), adminUser, adminPass)
	img := newImage(t, "linux", "amd64", 1)
	admin.pushImage("team/app", "v1", img)
	admin.checkImage("up/library/base", upImg) // cold: fetched from the upstream
	admin.checkImage("up/library/base", upImg) // warm: served from the cache
	bad := authClient(t, srv.URL(), adminUser, "wrong-password")
	bad.expect(bad.request("GET", "/v2/", nil), http.StatusUnauthorized)

	fams := scrapeMetrics(t, debug)
	atLeast := func(name string, labels map[string]string, min float64) {
		t.Helper()
		v, ok := metricValue(fams, name, labels)
		if !ok || v < min {
			t.Errorf("%s%v = %v (present: %v), want at least %v", name, labels, v, ok, min)
		}
	}
	atLeast("berth_http_requests_total", map[string]string{"route": "manifest", "method": "PUT", "code": "201"}, 1)
	atLeast("berth_http_requests_total", map[string]string{"route": "upload", "method": "PUT", "code": "201"}, 2)
	atLeast("berth_http_requests_total", map[string]string{"route": "manifest", "method": "GET", "code": "200"}, 2)
	atLeast("berth_http_requests_total", map[string]string{"route": "base", "method": "GET", "code": "401"}, 1)
	atLeast("berth_http_request_duration_seconds", map[string]string{"route": "blob", "method": "GET"}, 4)
	atLeast("berth_http_request_bytes_total", map[string]string{"route": "upload"}, float64(len(img.Layers[0].Data)))
	atLeast("berth_http_response_bytes_total", map[string]string{"route": "blob"}, float64(len(upImg.Layers[0].Data)))
	atLeast("berth_cache_requests_total", map[string]string{"registry": "up", "kind": "blob", "result": "miss"}, 3)
	atLeast("berth_cache_requests_total", map[string]string{"registry": "up", "kind": "blob", "result": "hit"}, 3)
	atLeast("berth_cache_requests_total", map[string]string{"registry": "up", "kind": "manifest", "result": "miss"}, 1)
	atLeast("berth_upstream_request_duration_seconds", map[string]string{"registry": "up"}, 3)
	atLeast("berth_upstream_bytes_total", map[string]string{"registry": "up"}, float64(len(upImg.Layers[0].Data)+len(upImg.Layers[1].Data)))
	atLeast("berth_upstream_up", map[string]string{"registry": "up"}, 1)
	atLeast("berth_auth_attempts_total", map[string]string{"method": "basic", "result": "failure"}, 1)
	atLeast("berth_auth_attempts_total", map[string]string{"method": "basic", "result": "success"}, 5)
	atLeast("berth_repositories", nil, 2)
	atLeast("berth_manifests", nil, 2)
	atLeast("berth_blobs", nil, 5)
	atLeast("berth_storage_bytes", nil, float64(len(img.Layers[0].Data)+len(upImg.Layers[0].Data)))
	atLeast("berth_build_info", nil, 1)
	if _, ok := metricValue(fams, "berth_uploads_in_flight", nil); !ok {
		t.Error("no berth_uploads_in_flight")
	}
	// No label carries a repository name or a user.
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v := l.GetValue(); strings.Contains(v, "team/app") || strings.Contains(v, "library/base") || v == adminUser {
					t.Errorf("%s carries %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
	// The profiler is there too, and the registry's port serves neither.
	if code, _ := getStatus(t, "http://"+debug+"/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/cmdline on the debug listener = %d", code)
	}
	if code, _ := getStatus(t, srv.URL()+"/metrics"); code == http.StatusOK {
		t.Error("the registry's listener serves /metrics")
	}
	// The audit log has the push and the failed login.
	log := srv.log.String()
	for _, want := range []string{"msg=audit audit=true action=push outcome=ok user=admin", "action=login outcome=failed user=admin"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no %q", want)
		}
	}
}

// receiver is a webhook endpoint on a fixed loopback address that can go down and come back.
type receiver struct {
	t      testing.TB
	addr   string
	secret []byte
	srv    *http.Server

	mu     sync.Mutex
	events []recvEvent
	bad    []string
	got    chan struct{}
}

// recvEvent is an event as a consumer of distribution's notifications decodes it.
type recvEvent struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"`
	Target    struct {
		MediaType      string `json:"mediaType"`
		Size           int64  `json:"size"`
		Digest         string `json:"digest"`
		Length         int64  `json:"length"`
		Repository     string `json:"repository"`
		FromRepository string `json:"fromRepository"`
		URL            string `json:"url"`
		Tag            string `json:"tag"`
	} `json:"target"`
	Request struct {
		ID        string `json:"id"`
		Addr      string `json:"addr"`
		Host      string `json:"host"`
		Method    string `json:"method"`
		UserAgent string `json:"useragent"`
	} `json:"request"`
	Actor struct {
		Name string `json:"name"`
	} `json:"actor"`
	Source struct {
		Addr       string `json:"addr"`
		InstanceID string `json:"instanceID"`
	} `json:"source"`
}

func newReceiver(t testing.TB, secret string) *receiver {
	rc := &receiver{t: t, addr: freeAddr(t), secret: []byte(secret), got: make(chan struct{}, 10000)}
	t.Cleanup(rc.stop)
	return rc
}

// start serves on the receiver's address.
func (rc *receiver) start() {
	rc.t.Helper()
	ln, err := net.Listen("tcp", rc.addr)
	if err != nil {
		rc.t.Fatalf("receiver: %v", err)
	}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
}

// stop closes the listener and the connections: berth finds nobody there.
func (rc *receiver) stop() {
	if rc.srv != nil {
		_ = rc.srv.Close()
		rc.srv = nil
	}
}

// serve checks a delivery (method, media type, signature: an HMAC-SHA256 of the body computed
// here) and records its events.
func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, rc.secret)
	m.Write(body)
	wantSig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	var env struct {
		Events []recvEvent `json:"events"`
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/hook":
		rc.bad = append(rc.bad, r.Method+" "+r.URL.Path)
	case r.Header.Get("Content-Type") != "application/vnd.docker.distribution.events.v1+json":
		rc.bad = append(rc.bad, "Content-Type "+r.Header.Get("Content-Type"))
	case !hmac.Equal([]byte(r.Header.Get("X-Berth-Signature")), []byte(wantSig)):
		rc.bad = append(rc.bad, "signature "+r.Header.Get("X-Berth-Signature"))
	case json.Unmarshal(body, &env) != nil || len(env.Events) == 0:
		rc.bad = append(rc.bad, "body "+string(body))
	default:
		rc.events = append(rc.events, env.Events...)
		rc.got <- struct{}{}
		return
	}
	// A consumer refuses what it cannot check.
	w.WriteHeader(http.StatusBadRequest)
}

// snapshot returns the events received so far and the deliveries refused.
func (rc *receiver) snapshot() ([]recvEvent, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recvEvent(nil), rc.events...), append([]string(nil), rc.bad...)
}

// eventKey names an event by what it reports.
func eventKey(action, repo, digest, tag string) string {
	return action + " " + repo + "@" + digest + ":" + tag
}

// waitFor waits until every key in want was received, and returns the events.
func (rc *receiver) waitFor(want []string, within time.Duration) []recvEvent {
	rc.t.Helper()
	deadline := time.After(within)
	for {
		evs, bad := rc.snapshot()
		if len(bad) > 0 {
			rc.t.Fatalf("the receiver refused deliveries: %v", bad)
		}
		have := map[string]bool{}
		for _, e := range evs {
			have[eventKey(e.Action, e.Target.Repository, e.Target.Digest, e.Target.Tag)] = true
		}
		missing := []string{}
		for _, k := range want {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			return evs
		}
		select {
		case <-rc.got:
		case <-deadline:
			rc.t.Fatalf("events not received within %v: %v\nreceived: %d events", within, missing, len(evs))
		}
	}
}

// pushEvents lists the events of pushing img as repo:tag.
func pushEvents(repo, tag string, img image) []string {
	out := []string{eventKey("push", repo, img.Manifest.Digest(), tag), eventKey("push", repo, img.Config.Digest(), "")}
	for _, l := range img.Layers {
		out = append(out, eventKey("push", repo, l.Digest(), ""))
	}
	return out
}

// webhookConfig writes a config with one endpoint at rc (and a debug listener when debug is
// set).
func webhookConfig(t testing.TB, rc *receiver, debug string, extra string) string {
	cfg := fmt.Sprintf(`notifications:
  endpoints:
    - name: hook
      url: http://%s/hook
      secret: %s
      timeout: 1s
      backoff: 50ms
      maxBackoff: 300ms
%s`, rc.addr, rc.secret, extra)
	if debug != "" {
		cfg += "debug:\n  addr: " + debug + "\n"
	}
	return writeFile(t, t.TempDir(), "berth.yaml", []byte(cfg))
}

// TestOpsWebhooks pushes, pulls and deletes, and checks that a receiver on loopback gets each
// event in distribution's envelope with a valid signature; then it takes the receiver down,
// pushes, restarts berth and brings the receiver back, which then gets the events it missed.
func TestOpsWebhooks(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, "e2e-secret")
	rc.start()
	srv := startBerth(t, "--config", webhookConfig(t, rc, "", ""))
	c := newClient(t, srv)

	img := newImage(t, "linux", "amd64", 1)
	c.pushImage("ops/app", "v1", img)
	c.checkImage("ops/app", img)
	c.expect(c.request("GET", "/v2/ops/app/manifests/v1", nil), http.StatusOK)
	c.expect(c.request("DELETE", "/v2/ops/app/manifests/v1", nil), http.StatusAccepted)
	want := append(pushEvents("ops/app", "v1", img),
		eventKey("pull", "ops/app", img.Manifest.Digest(), "v1"),
		eventKey("pull", "ops/app", img.Layers[0].Digest(), ""),
		eventKey("delete", "ops/app", "", "v1"))
	evs := rc.waitFor(want, 30*time.Second)
	for _, e := range evs {
		if e.ID == "" || e.Timestamp.IsZero() || e.Request.ID == "" || e.Request.Method == "" || e.Request.Host != srv.Addr ||
			e.Source.InstanceID == "" || !strings.HasSuffix(e.Source.Addr, srv.Addr[strings.LastIndex(srv.Addr, ":"):]) {
			t.Errorf("event lacks its records: %+v", e)
		}
		if e.Action == "push" && e.Target.Tag == "v1" {
			if e.Target.MediaType != img.Manifest.MediaType || e.Target.Size != int64(len(img.Manifest.Data)) ||
				e.Target.Length != e.Target.Size || e.Target.URL != srv.URL()+"/v2/ops/app/manifests/"+img.Manifest.Digest() {
				t.Errorf("manifest push event target %+v", e.Target)
			}
		}
	}

	// The receiver goes away; what happens meanwhile is delivered once it is back, across a
	// restart of berth.
	rc.stop()
	img2 := newImage(t, "linux", "arm64", 1)
	c.pushImage("ops/app", "v2", img2)
	srv.Stop()
	srv.Restart()
	rc.start()
	rc.waitFor(pushEvents("ops/app", "v2", img2), 30*time.Second)
}

// TestOpsWebhooksKill queues events while the receiver is down, kills berth with SIGKILL, and
// checks that after a restart each queued event is delivered exactly once.
func TestOpsWebhooksKill(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, "kill-secret")
	debug := freeAddr(t)
	srv := startBerth(t, "--config", webhookConfig(t, rc, debug, "      events: [push, delete]\n"))
	c := newClient(t, srv)
	var want []string
	for i := range 3 {
		img := newImage(t, "linux", "amd64", 1+i)
		tag := fmt.Sprintf("v%d", i)
		c.pushImage("ops/kill", tag, img)
		want = append(want, pushEvents("ops/kill", tag, img)...)
	}
	c.expect(c.request("DELETE", "/v2/ops/kill/manifests/v0", nil), http.StatusAccepted)
	want = append(want, eventKey("delete", "ops/kill", "", "v0"))
	// Deliveries fail (nobody listens) while the events wait in the queue.
	if !srv.log.waitFor(func(s string) bool { return strings.Contains(s, "notifications: delivery failed") }, 10*time.Second) {
		t.Fatal("no failed delivery logged while the receiver is down")
	}
	srv.Kill()
	rc.start()
	srv.Restart()
	evs := rc.waitFor(want, 60*time.Second)
	// Every event delivered, the queue empty: nothing more can arrive.
	if !pollUntil(30*time.Second, func() bool {
		v, _ := metricValue(scrapeMetrics(t, debug), "berth_notifications_delivered_total", map[string]string{"endpoint": "hook"})
		return v >= float64(len(want))
	}) {
		t.Fatalf("berth did not count %d deliveries", len(want))
	}
	srv.Stop()
	evs, _ = rc.snapshot()
	seen := map[string]int{}
	ids := map[string]int{}
	for _, e := range evs {
		seen[eventKey(e.Action, e.Target.Repository, e.Target.Digest, e.Target.Tag)]++
		ids[e.ID]++
	}
	for _, k := range want {
		if seen[k] != 1 {
			t.Errorf("%s delivered %d times, want once", k, seen[k])
		}
	}
	if len(evs) != len(want) {
		t.Errorf("%d events delivered, want %d", len(evs), len(want))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

// TestOpsDrainCutsUploads stops berth while an upload is still sending: the drain timeout
// passes, berth logs the upload it cuts and exits cleanly, and after a restart the upload
// resumes from what berth received and completes with the right digest.
func TestOpsDrainCutsUploads(t *testing.T) {
	t.Parallel()
	debug := freeAddr(t)
	cfg := writeFile(t, t.TempDir(), "berth.yaml", []byte("server:\n  drainTimeout: 1s\n  bodyIdleTimeout: 5m\ndebug:\n  addr: "+debug+"\n"))
	srv := startBerth(t, "--config", cfg)
	c := newClient(t, srv)
	loc := c.startUpload("ops/drain")
	session := loc[strings.LastIndex(loc, "/")+1:]
	data := randomBytes(t, 1<<20)

	// A streamed PATCH that sends half the data and then waits.
	pr, pw := io.Pipe()
	req, err := http.NewRequest("PATCH", c.resolve(loc).String(), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	patchDone := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the cut PATCH answered %s", resp.Status)
		}
		patchDone <- err
	}()
	if _, err := pw.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(10*time.Second, func() bool {
		v, _ := metricValue(scrapeMetrics(t, debug), "berth_uploads_in_flight", nil)
		return v == 1
	}) {
		t.Fatal("berth_uploads_in_flight did not reach 1")
	}

	srv.Stop() // SIGTERM: the drain waits 1s, then cuts the upload; exit status 0
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-patchDone
	log := srv.log.String()
	if !strings.Contains(log, "upload cut by the shutdown") || !strings.Contains(log, session) {
		t.Fatalf("the log does not name the cut upload %s", session)
	}
	if !strings.Contains(log, "drain timeout passed") {
		t.Error("the log does not say the drain timeout passed")
	}

	srv.Restart()
	r := c.expect(c.request("GET", loc, nil), http.StatusNoContent)
	var end int
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "0-%d", &end); err != nil || end+1 > len(data)/2 {
		t.Fatalf("the cut upload's Range is %q, want 0-N with N below %d", r.Header.Get("Range"), len(data)/2)
	}
	u := &chunkedUpload{data: data, acked: end + 1, location: loc}
	if end == 0 {
		u.acked = 0 // "0-0" is the Range of an empty upload
	}
	c.resume("ops/drain", u)
}
