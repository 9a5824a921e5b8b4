package e2e

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/connector"
)

// TestConnectorVirtualClients puts a virtual registry over a hosted registry and two caches:
// one of the CNCF registry with htpasswd (Basic) authentication, one of another berth in
// token mode (Bearer). docker, skopeo, crane and regctl pull through it and push to it; then
// both upstreams go away and everything pulled before still pulls, while what was never
// pulled fails with an error naming the upstream.
func TestConnectorVirtualClients(t *testing.T) {
	t.Parallel()
	lookPath(t, "docker")
	skopeo := newTool(t, lookPath(t, "skopeo"), clientEnv(t))
	crane := newTool(t, peer(t, "crane"), clientEnv(t))
	regctl := newTool(t, peer(t, "regctl"), clientEnv(t))

	// Upstreams, each behind a proxy that counts what berth asks of it.
	dist := startDistribution(t, distOptions{htpasswd: htpasswdFile(t, "dist", "dist-pass")})
	tokUp := startAuthBerth(t, exampleConfig(t, "auth-token.yaml"), nil)
	alpine := newImage(t, "linux", "amd64", 2)
	never := newImage(t, "linux", "amd64", 1)
	distClient := authClient(t, "http://"+dist.Addr, "dist", "dist-pass")
	distClient.pushImage("base/alpine", "3", alpine)
	distClient.pushImage("base/alpine", "never", never)
	tool := newIndex(t, "linux/amd64", "linux/arm64")
	tokUp.client(t, adminUser, adminPass).pushIndex("team/tool", "1", tool)
	pd, pt := startCountingProxy(t, "http://"+dist.Addr), startCountingProxy(t, tokUp.URL())

	ttl := time.Duration(0) // every pull revalidates its tag: the stale path is exercised below
	cache := func(name, up, user, pass string) connector.Registry {
		return connector.Registry{Name: name, Type: connector.TypeCache, Prefix: name + "/", TagTTL: &ttl,
			Upstream: connector.Upstream{URL: up, Username: user, Password: pass}}
	}
	b := startConnectorBerth(t, connector.Config{
		{Name: "local", Type: connector.TypeHosted, Prefix: "local/"},
		cache("dist", pd.URL(), "dist", "dist-pass"),
		cache("tok", pt.URL(), readerUser, readerPass),
		{Name: "all", Type: connector.TypeVirtual, Prefix: "all/", Members: []string{"local", "dist", "tok"}, PushTo: "local"},
	})
	reg := b.client(t)
	host := b.Addr
	alpineRef, toolRef := host+"/all/base/alpine:3", host+"/all/team/tool:1"

	// docker: an image from the Basic upstream, an index from the Bearer one.
	engine := startDockerd(t)
	docker := engine.client(t)
	docker.run("pull", alpineRef)
	if id := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", alpineRef)); id != alpine.Config.Digest() {
		t.Errorf("docker pulled %s as %s, want %s", alpineRef, id, alpine.Config.Digest())
	}
	docker.run("pull", toolRef)
	if id := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", toolRef)); id != tool.Images[0].Config.Digest() {
		t.Errorf("docker pulled %s as %s, want the linux/amd64 image %s", toolRef, id, tool.Images[0].Config.Digest())
	}

	// skopeo: every platform of the index.
	policy := writeFile(t, t.TempDir(), "policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	layout := filepath.Join(t.TempDir(), "layout")
	skopeo.run("--policy", policy, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
		"docker://"+toolRef, "oci:"+layout+":1")
	if raw := skopeo.run("inspect", "--raw", "--tls-verify=false", "docker://"+toolRef); sha256Digest([]byte(raw)) != tool.Manifest.Digest() {
		t.Errorf("skopeo reads %s as %s, want %s", toolRef, sha256Digest([]byte(raw)), tool.Manifest.Digest())
	}

	// crane: pull, and a copy within the virtual registry (a push to it).
	if got := strings.TrimSpace(crane.run("digest", "--insecure", alpineRef)); got != alpine.Manifest.Digest() {
		t.Errorf("crane digest %s = %s, want %s", alpineRef, got, alpine.Manifest.Digest())
	}
	crane.run("pull", "--insecure", "--format", "oci", alpineRef, filepath.Join(t.TempDir(), "crane-layout"))
	crane.run("copy", "--insecure", alpineRef, host+"/all/copied/alpine:v1")

	// regctl: manifests and blobs, and a copy too.
	regctl.run("registry", "set", host, "--tls", "disabled")
	if got := regctl.run("manifest", "get", "--format", "raw-body", toolRef); got != string(tool.Manifest.Data) {
		t.Errorf("regctl manifest get %s differs from the index pushed upstream", toolRef)
	}
	for _, l := range tool.Images[1].Layers {
		if got := regctl.run("blob", "get", host+"/all/team/tool", l.Digest()); got != string(l.Data) {
			t.Errorf("regctl blob get %s differs", l.Digest())
		}
	}
	regctl.run("image", "copy", toolRef, host+"/all/regcopied/tool:1")

	// docker push to the virtual name.
	pushed := host + "/all/pushed/alpine:v1"
	docker.run("tag", alpineRef, pushed)
	docker.run("push", pushed)

	// Pushes landed in the hosted member, and nowhere upstream.
	reg.checkImage("local/copied/alpine", alpine)
	reg.checkIndex("local/regcopied/tool", "1", tool)
	if _, _, d := reg.manifest("local/pushed/alpine", "v1"); d == "" {
		t.Error("docker push to all/ left nothing in local/")
	}
	if st := distClient.manifestStatus("copied/alpine", "v1"); st != http.StatusNotFound {
		t.Errorf("the push reached the upstream: %d", st)
	}
	// Cached under the members' names, each blob fetched once whatever the number of clients.
	reg.checkImage("dist/base/alpine", alpine)
	reg.checkIndex("tok/team/tool", "1", tool)
	for _, bl := range append([]blob{alpine.Config}, alpine.Layers...) {
		if n := pd.count("GET blobs " + bl.Digest()); n != 1 {
			t.Errorf("blob %s fetched %d times from the CNCF registry, want 1", bl.Digest(), n)
		}
	}
	// The catalog covers hosted, cached, upstream and virtual names.
	cat := reg.catalog()
	for _, want := range []string{"all/base/alpine", "all/team/tool", "all/pushed/alpine", "dist/base/alpine", "local/pushed/alpine", "tok/team/tool"} {
		if !slices.Contains(cat, want) {
			t.Errorf("catalog lacks %s: %v", want, cat)
		}
	}
	if got := reg.tags("all/base/alpine"); !slices.Equal(got, []string{"3", "never"}) {
		t.Errorf("tags of all/base/alpine = %v, want the upstream's [3 never]", got)
	}

	// The upstreams go away.
	pd.Stop()
	pt.Stop()
	for _, ref := range []struct{ repo, ref string }{
		{"all/base/alpine", "3"}, {"all/base/alpine", alpine.Manifest.Digest()},
		{"dist/base/alpine", "3"}, {"all/team/tool", "1"}, {"tok/team/tool", "1"},
		{"all/team/tool", tool.Manifest.Digest()}, {"all/team/tool", tool.Images[1].Manifest.Digest()},
	} {
		r := reg.expect(reg.request("GET", "/v2/"+ref.repo+"/manifests/"+ref.ref, nil, "Accept", manifestAccept), http.StatusOK)
		isTag := !strings.Contains(ref.ref, ":")
		if w := r.Header.Get("Warning"); isTag != strings.Contains(w, "110") {
			t.Errorf("%s:%s with the upstream down: Warning %q (want one on tags only)", ref.repo, ref.ref, w)
		}
	}
	reg.checkImage("all/base/alpine", alpine)
	reg.checkIndex("all/team/tool", "1", tool)
	docker.run("rmi", alpineRef, pushed)
	docker.run("pull", alpineRef)
	if got := strings.TrimSpace(crane.run("digest", "--insecure", toolRef)); got != tool.Manifest.Digest() {
		t.Errorf("crane digest with the upstream down = %s", got)
	}
	// Never pulled: a clear error naming the upstream and the cause.
	r := reg.request("GET", "/v2/all/base/alpine/manifests/never", nil, "Accept", manifestAccept)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "UNAVAILABLE") ||
		!strings.Contains(string(r.Body), pd.URL()) || !strings.Contains(string(r.Body), "refused") {
		t.Errorf("never-pulled tag with the upstreams down:\n%s", r)
	}
	if _, stderr, err := crane.exec("digest", "--insecure", host+"/all/base/alpine:never"); err == nil || !strings.Contains(stderr, "UNAVAILABLE") {
		t.Errorf("crane digest of a never-pulled tag: err %v, stderr %q", err, stderr)
	}
	// The health endpoint tells.
	h := reg.expect(reg.request("GET", connector.HealthPath, nil), http.StatusOK)
	if strings.Count(string(h.Body), `"state":"down"`) != 2 {
		t.Errorf("health with both upstreams stopped: %s", h.Body)
	}
}
