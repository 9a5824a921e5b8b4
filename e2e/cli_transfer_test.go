package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCLIPushPull drives push, pull, tags, ls, inspect and rm against berth and against the
// CNCF registry: an index pushed from an OCI layout, pulled back whole into a layout and one
// platform into a docker archive, which is pushed again; every cliResult is checked byte for
// byte over HTTP or on disk.
func TestCLIPushPull(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"berth", "distribution"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var addr string
			if kind == "berth" {
				addr = startBerth(t).Addr
			} else {
				addr = startDistribution(t, distOptions{}).Addr
			}
			reg := registryClient(t, addr)
			c := newCLI(t)
			repo := addr + "/e2e/cli/multi"

			ix := newIndex(t, "linux/amd64", "linux/arm64")
			src := filepath.Join(t.TempDir(), "src")
			ix.writeLayout(t, src, "v1")
			c.ok("push", src, repo+":v1")
			reg.checkIndex("e2e/cli/multi", "v1", ix)

			// The whole index into a new layout.
			out := filepath.Join(t.TempDir(), "pulled")
			c.ok("pull", repo+":v1", "--all-platforms", "-o", out)
			idx := layoutIndex(t, out)
			if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ix.Manifest.Digest() ||
				idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
				t.Fatalf("pulled layout index.json lists %+v, want index %s named v1", idx.Manifests, ix.Manifest.Digest())
			}
			if !bytes.Equal(layoutBlob(t, out, ix.Manifest.Digest()), ix.Manifest.Data) {
				t.Fatal("pulled index differs from the one pushed")
			}
			for _, img := range ix.Images {
				checkLayoutImage(t, out, img)
			}

			// One platform into a docker archive, and back from it.
			tarPath := filepath.Join(t.TempDir(), "arm64.tar")
			c.ok("pull", repo+":v1", "--platform", "linux/arm64", "-o", tarPath)
			c.ok("push", tarPath, addr+"/e2e/cli/arm64:v1")
			reg.checkImage("e2e/cli/arm64", ix.Images[1])
			if _, _, got := reg.manifest("e2e/cli/arm64", "v1"); got != ix.Images[1].Manifest.Digest() {
				t.Errorf("arm64:v1 is %s, want %s", got, ix.Images[1].Manifest.Digest())
			}

			// Without --platform: this machine's image.
			var res struct {
				Digest, Destination, Format string
			}
			one := filepath.Join(t.TempDir(), "one")
			if err := json.Unmarshal([]byte(c.ok("pull", repo+":v1", "-o", one, "--json")), &res); err != nil {
				t.Fatal(err)
			}
			for i, p := range []string{"amd64", "arm64"} {
				if p == runtime.GOARCH && res.Digest != ix.Images[i].Manifest.Digest() {
					t.Errorf("pull without --platform on %s got %s, want %s", runtime.GOARCH, res.Digest, ix.Images[i].Manifest.Digest())
				}
			}
			if res.Format != "oci" || res.Destination != one {
				t.Errorf("pull --json = %+v", res)
			}

			// Listings and inspection.
			if got := lines(c.ok("tags", repo)); !slices.Equal(got, []string{"v1"}) {
				t.Errorf("tags %s = %v, want [v1]", repo, got)
			}
			if got := lines(c.ok("ls", addr)); !equalSorted(got, []string{"e2e/cli/arm64", "e2e/cli/multi"}) {
				t.Errorf("ls %s = %v", addr, got)
			}
			if raw := c.ok("inspect", "--raw", repo+":v1"); raw != string(ix.Manifest.Data) {
				t.Errorf("inspect --raw differs from the index pushed:\n%s", raw)
			}
			var insp struct {
				Digest    string
				Platforms []struct {
					Platform  string
					Digest    string
					TotalSize int64
				}
			}
			if err := json.Unmarshal([]byte(c.ok("inspect", "--json", repo+":v1")), &insp); err != nil {
				t.Fatal(err)
			}
			if insp.Digest != ix.Manifest.Digest() || len(insp.Platforms) != 2 {
				t.Fatalf("inspect --json: %+v", insp)
			}
			for i, p := range insp.Platforms {
				img := ix.Images[i]
				want := int64(len(img.Config.Data))
				for _, l := range img.Layers {
					want += int64(len(l.Data))
				}
				if p.Platform != img.Platform.OS+"/"+img.Platform.Architecture || p.Digest != img.Manifest.Digest() || p.TotalSize != want {
					t.Errorf("inspect platform %d = %+v, want %s/%s %s of %d bytes", i, p, img.Platform.OS, img.Platform.Architecture, img.Manifest.Digest(), want)
				}
			}
			if human := c.ok("inspect", repo+":v1", "--platform", "linux/arm64"); !strings.Contains(human, ix.Images[1].Manifest.Digest()) ||
				!strings.Contains(human, "linux/arm64") {
				t.Errorf("inspect --platform linux/arm64:\n%s", human)
			}

			// rm by tag, then by digest.
			c.ok("rm", addr+"/e2e/cli/arm64:v1")
			c.fails(cliExitNotFound, []string{"e2e/cli/arm64:v1"}, "inspect", addr+"/e2e/cli/arm64:v1")
			c.ok("rm", repo+"@"+ix.Manifest.Digest())
			if st := reg.manifestStatus("e2e/cli/multi", ix.Manifest.Digest()); st != http.StatusNotFound {
				t.Errorf("index still served (%d) after rm by digest", st)
			}

			if kind == "berth" {
				if got := c.ok("search", addr, "multi"); !strings.Contains(got, "e2e/cli/multi") {
					t.Errorf("search %s multi:\n%s", addr, got)
				}
			}
		})
	}
}

// TestCLICopyAllPlatforms copies a multi-platform index from the CNCF registry to berth
// with --all-platforms; crane and skopeo read it back identical, index and images.
func TestCLICopyAllPlatforms(t *testing.T) {
	t.Parallel()
	crane := newTool(t, peer(t, "crane"), clientEnv(t))
	skopeo := newTool(t, lookPath(t, "skopeo"), clientEnv(t))
	dist := startDistribution(t, distOptions{})
	srv := startBerth(t)
	c := newCLI(t)

	ix := newIndex(t, "linux/amd64", "linux/arm64", "linux/s390x")
	src := filepath.Join(t.TempDir(), "src")
	ix.writeLayout(t, src, "v1")
	c.ok("push", src, dist.Addr+"/e2e/multi:v1")
	registryClient(t, dist.Addr).checkIndex("e2e/multi", "v1", ix)

	dst := srv.Addr + "/e2e/copied/multi:v1"
	var res struct{ Digest string }
	if err := json.Unmarshal([]byte(c.ok("copy", "--all-platforms", "--json", dist.Addr+"/e2e/multi:v1", dst)), &res); err != nil {
		t.Fatal(err)
	}
	if res.Digest != ix.Manifest.Digest() {
		t.Errorf("copy printed digest %s, want %s", res.Digest, ix.Manifest.Digest())
	}
	newClient(t, srv).checkIndex("e2e/copied/multi", "v1", ix)

	if got := crane.run("manifest", "--insecure", dst); got != string(ix.Manifest.Data) {
		t.Errorf("crane manifest %s differs from the source index:\n%s", dst, got)
	}
	if got := strings.TrimSpace(crane.run("digest", "--insecure", dst)); got != ix.Manifest.Digest() {
		t.Errorf("crane digest %s = %s, want %s", dst, got, ix.Manifest.Digest())
	}
	policy := writeFile(t, t.TempDir(), "policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	if got := skopeo.run("inspect", "--raw", "--tls-verify=false", "docker://"+dst); got != string(ix.Manifest.Data) {
		t.Errorf("skopeo inspect --raw %s differs from the source index:\n%s", dst, got)
	}
	for _, img := range ix.Images {
		byDigest := srv.Addr + "/e2e/copied/multi@" + img.Manifest.Digest()
		if got := crane.run("manifest", "--insecure", byDigest); got != string(img.Manifest.Data) {
			t.Errorf("crane manifest %s differs", byDigest)
		}
		if got := skopeo.run("inspect", "--raw", "--tls-verify=false", "docker://"+byDigest); got != string(img.Manifest.Data) {
			t.Errorf("skopeo inspect --raw %s differs", byDigest)
		}
	}
	// skopeo copies everything out of berth into a layout; every blob is the source's.
	out := filepath.Join(t.TempDir(), "skopeo-out")
	skopeo.run("--policy", policy, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "docker://"+dst, "oci:"+out+":v1")
	for _, img := range ix.Images {
		checkLayoutImage(t, out, img)
	}

	// Without --all-platforms, one platform's image (its own digest) or a filtered index.
	c.ok("copy", "--platform", "linux/s390x", dist.Addr+"/e2e/multi:v1", srv.Addr+"/e2e/copied/s390x:v1")
	if _, _, got := newClient(t, srv).manifest("e2e/copied/s390x", "v1"); got != ix.Images[2].Manifest.Digest() {
		t.Errorf("copy --platform linux/s390x gave %s, want the image %s", got, ix.Images[2].Manifest.Digest())
	}
	c.ok("copy", "--platform", "linux/s390x", "--platform", "linux/amd64", dist.Addr+"/e2e/multi:v1", srv.Addr+"/e2e/copied/two:v1")
	body, _, _ := newClient(t, srv).manifest("e2e/copied/two", "v1")
	if m := parseManifest(t, body); len(m.Manifests) != 2 || m.Manifests[0].Digest != ix.Images[0].Manifest.Digest() ||
		m.Manifests[1].Digest != ix.Images[2].Manifest.Digest() {
		t.Errorf("copy with two platforms gave index %s", body)
	}
	c.fails(cliExitNotFound, []string{"linux/mips64", "linux/amd64, linux/arm64, linux/s390x"},
		"copy", "--platform", "linux/mips64", dist.Addr+"/e2e/multi:v1", srv.Addr+"/e2e/copied/none:v1")
}

// faultyRegistry proxies to a registry and spoils the GET of one blob: "corrupt" flips a
// byte (same length), "truncate" sends half of it and closes the connection.
func faultyRegistry(t testing.TB, upstream, blobDigest, mode string) string {
	t.Helper()
	u, err := url.Parse("http://" + upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+blobDigest) {
			proxy.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(u.String() + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", blobDigest)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		switch mode {
		case "corrupt":
			data[len(data)/2] ^= 0xff
			w.Write(data)
		case "truncate":
			w.Write(data[:len(data)/2])
			// Returning short of Content-Length makes the server close the connection.
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestCLIBadInput checks the failures a user meets: malformed references, unreachable
// hosts, missing images, a blob whose digest does not match and a truncated blob. Each
// fails with the right exit code and a message naming the image and the cause, and leaves
// nothing at the output path.
func TestCLIBadInput(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	c := newCLI(t)
	img := newImage(t, "linux", runtime.GOARCH, 2)
	reg.pushImage("e2e/bad", "v1", img)
	ref := srv.Addr + "/e2e/bad:v1"
	outDir := t.TempDir()

	// Usage: malformed references, missing arguments, bad flags.
	c.fails(cliExitUsage, []string{"invalid reference", "Bad/Name"}, "pull", srv.Addr+"/Bad/Name:v1", "-o", filepath.Join(outDir, "x.tar"))
	c.fails(cliExitUsage, []string{"invalid reference"}, "copy", ref, srv.Addr+"/e2e/x:bad tag")
	c.fails(cliExitUsage, []string{"--output"}, "pull", ref)
	c.fails(cliExitUsage, []string{"accepts 2 arg"}, "copy", ref)
	c.fails(cliExitUsage, []string{"unknown flag"}, "tags", "--no-such-flag", srv.Addr+"/e2e/bad")
	c.fails(cliExitUsage, []string{"platform"}, "pull", ref, "--platform", "linux/amd64/v1/extra", "-o", filepath.Join(outDir, "x.tar"))
	c.fails(cliExitUsage, []string{"insecure registry"}, "tags", "--insecure-registry", "http://x", srv.Addr+"/e2e/bad")

	// Not found: tag, repository; a missing local source is a plain failure.
	c.fails(cliExitNotFound, []string{"e2e/bad:nope", "MANIFEST_UNKNOWN"}, "pull", srv.Addr+"/e2e/bad:nope", "-o", filepath.Join(outDir, "x.tar"))
	c.fails(cliExitNotFound, []string{"e2e/none"}, "tags", srv.Addr+"/e2e/none")
	c.fails(cliExitFailure, []string{"no-such-dir"}, "push", filepath.Join(outDir, "no-such-dir"), ref)

	// Unreachable: nothing listens there.
	dead := freeAddr(t)
	c.fails(cliExitFailure, []string{dead + "/e2e/bad:v1", "connection refused"}, "pull", dead+"/e2e/bad:v1", "-o", filepath.Join(outDir, "x.tar"))

	// A blob that does not match its digest, and one cut short.
	layer := img.Layers[1].Digest()
	for _, mode := range []string{"corrupt", "truncate"} {
		proxy := faultyRegistry(t, srv.Addr, layer, mode)
		for _, out := range []string{"x.tar", "layout"} {
			r := c.try("pull", proxy+"/e2e/bad:v1", "-o", filepath.Join(outDir, out))
			if r.code != cliExitFailure || !strings.Contains(r.stderr, "e2e/bad") || !strings.Contains(r.stderr, layer) {
				t.Errorf("%s blob, pull to %s: want exit 1 naming the image and the blob, got %s", mode, out, r)
			}
			if mode == "corrupt" && !strings.Contains(r.stderr, "digest") {
				t.Errorf("corrupt blob: the message does not say digest: %s", r.stderr)
			}
		}
		r := c.try("copy", proxy+"/e2e/bad:v1", srv.Addr+"/e2e/bad-copy:"+mode)
		if r.code != cliExitFailure || !strings.Contains(r.stderr, layer) {
			t.Errorf("%s blob, copy: want exit 1 naming the blob, got %s", mode, r)
		}
		if st := reg.manifestStatus("e2e/bad-copy", mode); st != http.StatusNotFound {
			t.Errorf("%s blob: the copy's manifest exists (%d) although a blob failed", mode, st)
		}
		if st := reg.blobStatus("e2e/bad-copy", layer); st != http.StatusNotFound {
			t.Errorf("%s blob: the destination has the spoiled blob (%d)", mode, st)
		}
	}
	if left := leftovers(t, outDir); len(left) > 0 {
		t.Errorf("failed pulls left %v in %s", left, outDir)
	}

	// A pull into an existing non-layout directory is refused, and changes nothing there.
	busy := t.TempDir()
	writeFile(t, busy, "keep.txt", []byte("mine"))
	c.fails(cliExitFailure, []string{"neither empty nor an OCI image layout"}, "pull", ref, "-o", busy)
	if left := leftovers(t, busy, "keep.txt"); len(left) > 0 {
		t.Errorf("refused pull left %v", left)
	}
	// The same pull into a fresh path works, and the output exists only then.
	good := filepath.Join(outDir, "good.tar")
	c.ok("pull", ref, "-o", good, "-q")
	if _, err := os.Stat(good); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, outDir, "good.tar"); len(left) > 0 {
		t.Errorf("a pull left %v beside its output", left)
	}
}
