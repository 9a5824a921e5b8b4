package connector

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/registry"
)

// virtualSetup is a berth with hosted local/, caches hub/ and ghcr/ over
// two upstreams, and virtual all/ over local, hub, ghcr pushing to local.
type virtualSetup struct {
	up1, up2 *node
	c1, c2   *counter
	b        *node
}

func newVirtualSetup(t *testing.T, opts nodeOptions) *virtualSetup {
	t.Helper()
	s := &virtualSetup{c1: newCounter(), c2: newCounter()}
	s.up1 = newNode(t, nil, nodeOptions{}, s.c1.wrap)
	s.up2 = newNode(t, nil, nodeOptions{}, s.c2.wrap)
	cfg := Config{
		{Name: "local", Type: TypeHosted, Prefix: "local/"},
		cacheOf("hub", "hub/", s.up1.url()),
		cacheOf("ghcr", "ghcr/", s.up2.url()),
		{Name: "all", Type: TypeVirtual, Prefix: "all/", Members: []string{"local", "hub", "ghcr"}, PushTo: "local"},
		{Name: "ro", Type: TypeVirtual, Prefix: "ro/", Members: []string{"hub"}},
	}
	s.b = newNode(t, cfg, opts, nil)
	return s
}

func TestVirtualReadsInOrder(t *testing.T) {
	t.Parallel()
	s := newVirtualSetup(t, nodeOptions{})
	hosted, hub, ghcr := newImage(t, 10), newImage(t, 20), newImage(t, 30)
	s.b.push("local/app", "v1", hosted)
	s.up1.push("app", "v1", hub)
	s.up1.push("app", "hubonly", hub)
	s.up2.push("app", "ghcronly", ghcr)
	s.up2.push("tool", "1", ghcr)

	s.b.pull("all/app", "v1", hosted) // the hosted member comes first
	s.b.pull("all/app", "hubonly", hub)
	s.b.pull("all/app", "ghcronly", ghcr)
	s.b.pull("all/tool", "1", ghcr)
	s.b.pull("all/app", hub.digest.String(), hub)
	if n := s.c1.get("GET manifests v1"); n != 0 {
		t.Errorf("the cache was asked for a tag the hosted member has (%d)", n)
	}
	// Cached under the member's name.
	if _, err := s.b.meta.ResolveTag(context.Background(), "ghcr/tool", "1"); err != nil {
		t.Errorf("ghcr/tool:1 not cached: %v", err)
	}
	r := s.b.do("GET", "/v2/all/app/manifests/none", nil)
	if r.status != http.StatusNotFound {
		t.Fatalf("unknown tag: %v", r)
	}
	r = s.b.must(http.StatusOK, "GET", "/v2/all/app/tags/list", nil)
	var tl struct {
		Name string
		Tags []string
	}
	if err := json.Unmarshal(r.body, &tl); err != nil {
		t.Fatal(err)
	}
	if tl.Name != "all/app" || !slices.Equal(tl.Tags, []string{"ghcronly", "hubonly", "v1"}) {
		t.Errorf("virtual tags %+v", tl)
	}
}

func TestVirtualPushLandsInTarget(t *testing.T) {
	t.Parallel()
	s := newVirtualSetup(t, nodeOptions{})
	im := newImage(t, 50000)
	// Chunked upload: the Location must stay on the virtual name.
	for _, b := range im.blobs() {
		r := s.b.must(http.StatusAccepted, "POST", "/v2/all/pushed/blobs/uploads/", nil)
		loc := r.header.Get("Location")
		if !strings.HasPrefix(loc, "/v2/all/pushed/blobs/uploads/") {
			t.Fatalf("upload Location %q, want it under the virtual name", loc)
		}
		r = s.b.must(http.StatusAccepted, "PATCH", loc, b, "Content-Type: application/octet-stream")
		loc = r.header.Get("Location")
		if !strings.HasPrefix(loc, "/v2/all/pushed/") {
			t.Fatalf("PATCH Location %q", loc)
		}
		r = s.b.must(http.StatusCreated, "PUT", loc+"?digest="+digestOf(b), nil)
		if loc := r.header.Get("Location"); loc != "/v2/all/pushed/blobs/"+digestOf(b) {
			t.Errorf("blob Location %q", loc)
		}
	}
	r := s.b.must(http.StatusCreated, "PUT", "/v2/all/pushed/manifests/v1", im.manifest, "Content-Type: "+registry.MediaTypeOCIManifest)
	if loc := r.header.Get("Location"); loc != "/v2/all/pushed/manifests/"+im.digest.String() {
		t.Errorf("manifest Location %q", loc)
	}
	if _, err := s.b.meta.ResolveTag(context.Background(), "local/pushed", "v1"); err != nil {
		t.Fatalf("pushed image not in the hosted member: %v", err)
	}
	s.b.pull("all/pushed", "v1", im)
	s.b.pull("local/pushed", "v1", im)
	// A mount from the virtual name finds the blob in its member.
	r = s.b.do("POST", "/v2/local/other/blobs/uploads/?mount="+digestOf(im.layers[0])+"&from=all/pushed", nil)
	if r.status != http.StatusCreated {
		t.Errorf("mount from a virtual name: %v, want 201", r)
	}
	// Deleting through the virtual name deletes in the target.
	s.b.must(http.StatusAccepted, "DELETE", "/v2/all/pushed/manifests/v1", nil)
	if _, err := s.b.meta.ResolveTag(context.Background(), "local/pushed", "v1"); err == nil {
		t.Error("tag still in the hosted member after DELETE through the virtual name")
	}
	// Without a push target, read-only.
	r = s.b.do("POST", "/v2/ro/x/blobs/uploads/", nil)
	if r.status != http.StatusForbidden {
		t.Errorf("push to a virtual registry without pushTo: %v", r)
	}
}

func TestVirtualUpstreamDownFallsThrough(t *testing.T) {
	t.Parallel()
	s := newVirtualSetup(t, nodeOptions{})
	im := newImage(t, 10)
	s.up2.push("app", "v1", im)
	s.up1.srv.Close()
	// hub is down; ghcr has it.
	s.b.pull("all/app", "v1", im)
	r := s.b.do("GET", "/v2/all/app/manifests/v2", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("tag nobody has while a member is down: %v, want 503 (it may be on the member that is down)", r)
	}
}

// TestAuthorizeSeesClientNames: the connector authorizes the name the
// client used, and the registry does not judge member names again.
func TestAuthorizeSeesClientNames(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	authz := func(w http.ResponseWriter, r *http.Request, rt registry.Route) bool {
		mu.Lock()
		seen = append(seen, string(rt.Access)+" "+rt.Name)
		mu.Unlock()
		if strings.HasPrefix(rt.Name, "all/secret") {
			registry.WriteError(w, r, &registry.Error{Code: registry.ErrDenied})
			return false
		}
		return true
	}
	mayPull := func(r *http.Request, name string) bool { return !strings.Contains(name, "secret") }
	s := newVirtualSetup(t, nodeOptions{Authorize: authz, MayPull: mayPull})
	im := newImage(t, 10)
	s.up1.push("app", "v1", im)
	s.up1.push("secret", "v1", im)
	s.b.pull("all/app", "v1", im)
	s.b.push("all/new", "v1", im)
	if r := s.b.do("GET", "/v2/all/secret/manifests/v1", nil); r.status != http.StatusForbidden {
		t.Errorf("denied name: %v", r)
	}
	if s.c1.get("GET manifests v1") != 1 {
		t.Errorf("upstream asked %d times; a refused request must not reach it", s.c1.get("GET manifests v1"))
	}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	for _, n := range got {
		if strings.Contains(n, "local/") || strings.Contains(n, "hub/") {
			t.Errorf("authorization saw a member name: %q", n)
		}
	}
	if !slices.Contains(got, "pull all/app") || !slices.Contains(got, "push all/new") {
		t.Errorf("authorized %v", got)
	}
	r := s.b.must(http.StatusOK, "GET", "/v2/_catalog", nil)
	if strings.Contains(string(r.body), "secret") {
		t.Errorf("catalog shows what MayPull refuses: %s", r.body)
	}
}

func TestMirrorRouting(t *testing.T) {
	t.Parallel()
	dh, gh := newCounter(), newCounter()
	up1 := newNode(t, nil, nodeOptions{}, dh.wrap)
	up2 := newNode(t, nil, nodeOptions{}, gh.wrap)
	root := cacheOf("dockerhub", "", up1.url())
	root.MirrorOf = []string{"docker.io"}
	root.Upstream.SingleNamePrefix = "library/"
	other := cacheOf("ghcr", "ghcr/", up2.url())
	other.MirrorOf = []string{"ghcr.io"}
	b := newNode(t, Config{root, other, {Name: "local", Type: TypeHosted, Prefix: "local/"}}, nodeOptions{}, nil)

	alpine, tool := newImage(t, 10), newImage(t, 20)
	up1.push("library/alpine", "3", alpine)
	up2.push("org/tool", "1", tool)
	// The Docker daemon's mirror requests: library/ names at the root.
	b.pull("library/alpine", "3", alpine)
	// Single names get the prefix.
	b.pull("alpine", "3", alpine)
	// containerd's requests name the upstream host.
	r := b.must(http.StatusOK, "GET", "/v2/org/tool/manifests/1?ns=ghcr.io", nil, "Accept: "+registry.MediaTypeOCIManifest)
	if string(r.body) != string(tool.manifest) {
		t.Error("ns=ghcr.io served something else")
	}
	b.must(http.StatusOK, "GET", "/v2/org/tool/blobs/"+digestOf(tool.layers[0])+"?ns=ghcr.io", nil)
	b.must(http.StatusOK, "GET", "/v2/library/alpine/manifests/3?ns=docker.io", nil)
	if _, err := b.meta.ResolveTag(context.Background(), "ghcr/org/tool", "1"); err != nil {
		t.Errorf("ns request not cached under the cache's prefix: %v", err)
	}
	r = b.do("GET", "/v2/org/tool/manifests/1?ns=quay.io", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("ns of a host nobody mirrors: %v, want 404", r)
	}
	// Hosted names under a longer prefix are not the root cache's.
	b.push("local/mine", "1", tool)
	b.pull("local/mine", "1", tool)
	// library/alpine and alpine are two local names of one upstream
	// repository: each is fetched once.
	if n := dh.total("GET manifests"); n != 2 {
		t.Errorf("docker.io upstream got %d manifest GETs, want 2", n)
	}
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

func TestHealthEndpoint(t *testing.T) {
	t.Parallel()
	s := newVirtualSetup(t, nodeOptions{})
	im := newImage(t, 10)
	s.up1.push("app", "v1", im)
	s.b.pull("hub/app", "v1", im) // hub answered: up
	s.up2.srv.Close()
	s.b.do("GET", "/v2/ghcr/app/manifests/v1", nil) // ghcr did not: down
	r := s.b.must(http.StatusOK, "GET", HealthPath, nil)
	var doc struct {
		Connectors []Status `json:"connectors"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Connectors) != 2 {
		t.Fatalf("%s", r.body)
	}
	hub, ghcr := doc.Connectors[0], doc.Connectors[1]
	if hub.Name != "hub" || hub.Upstream != s.up1.url() || hub.State != "up" || hub.DownSince != nil {
		t.Errorf("hub %+v", hub)
	}
	if ghcr.Name != "ghcr" || ghcr.State != "down" || ghcr.DownSince == nil || !strings.Contains(ghcr.LastError, "refused") {
		t.Errorf("ghcr %+v", ghcr)
	}
	s.b.must(http.StatusMethodNotAllowed, "POST", HealthPath, nil)
}

func TestProbeStateChangesLogged(t *testing.T) {
	t.Parallel()
	count := newCounter()
	up := newNode(t, nil, nodeOptions{}, count.wrap)
	var logs testenv.Buffer
	b := newNode(t, Config{cacheOf("hub", "hub/", up.url())}, nodeOptions{Options: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}}, nil)
	ca := b.conn.caches[0]
	// Without the background probes, so that only these decide.
	_ = b.conn.Close()
	ctx := context.Background()
	ca.probe(ctx)
	if st := b.conn.Status()[0]; st.State != stateUp || st.LastProbe == nil {
		t.Fatalf("after a good probe: %+v", st)
	}
	count.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	ca.probe(ctx)
	st := b.conn.Status()[0]
	if st.State != stateDown || st.DownSince == nil || !strings.Contains(st.LastError, "503") {
		t.Fatalf("after a failed probe: %+v", st)
	}
	count.setHook(nil)
	ca.probe(ctx)
	if st := b.conn.Status()[0]; st.State != stateUp || st.DownSince != nil {
		t.Fatalf("after recovery: %+v", st)
	}
	out := logs.String()
	if !strings.Contains(out, `msg="upstream down" registry=hub`) || !strings.Contains(out, `msg="upstream up" registry=hub`) || !strings.Contains(out, "downFor=") {
		t.Errorf("state changes not logged:\n%s", out)
	}
}

// TestVirtualDownMemberKeepsOrder: a member that is down still serves
// the tags it has cached in its place in the order; what it lacks is
// looked for in the members after it first.
func TestVirtualDownMemberKeepsOrder(t *testing.T) {
	t.Parallel()
	s := newVirtualSetup(t, nodeOptions{})
	a, b := newImage(t, 10), newImage(t, 20)
	s.up1.push("app", "v1", a)
	s.up2.push("app", "v1", b)
	s.up2.push("app", "v2", b)
	s.b.pull("all/app", "v1", a)
	s.up1.srv.Close()
	s.b.must(http.StatusServiceUnavailable, "GET", "/v2/hub/app/manifests/nope", nil)
	if st := s.b.conn.Status()[0]; st.State != stateDown {
		t.Fatalf("hub %+v, want down", st)
	}
	s.c2.reset()
	s.b.pull("all/app", "v1", a)
	if n := s.c2.total(""); n != 0 {
		t.Errorf("ghcr was asked %d times for a tag hub has cached", n)
	}
	s.b.pull("all/app", "v2", b)
}
