package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The habits of docker, crane and regctl users: version, exit codes, --insecure,
// containerd's platform names, -o -, -q, rm that keeps tagged indexes whole, search
// filters, daemon.json, foreign layers.

// TestCLIVersion builds berth with a version set at link time, as a release would, and
// checks `berth version`, `berth --version` and the User-Agent of its requests.
func TestCLIVersion(t *testing.T) {
	t.Parallel()
	const v = "9.8.7-e2e"
	bin := filepath.Join(t.TempDir(), "berth")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X github.com/berthhq/berth/cmd/berthcmd.Version="+v, "-o", bin, "./cmd/berth")
	build.Dir = suite.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with -X: %v\n%s", err, out)
	}
	c := &cli{tool: newTool(t, bin, clientEnv(t))}
	out := c.ok("version")
	if !strings.HasPrefix(out, "berth "+v+"\n") || !strings.Contains(out, "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("berth version:\n%s", out)
	}
	if got := c.ok("--version"); got != out {
		t.Errorf("berth --version differs from berth version:\n%s\nvs\n%s", got, out)
	}
	var info struct{ Version, GoVersion string }
	if err := json.Unmarshal([]byte(c.ok("version", "--json")), &info); err != nil || info.Version != v || info.GoVersion != runtime.Version() {
		t.Errorf("berth version --json: %+v, %v", info, err)
	}
	// The binary the other tests use names a version too.
	if got := newCLI(t).ok("version"); !strings.HasPrefix(got, "berth ") || len(lines(got)[0]) <= len("berth ") {
		t.Errorf("berth version without -X: %q", got)
	}

	var mu sync.Mutex
	agents := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents[r.Header.Get("User-Agent")] = true
		mu.Unlock()
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v2/" {
			_, _ = w.Write([]byte("{}"))
			return
		}
		_, _ = w.Write([]byte(`{"name":"a","tags":["t1"]}`))
	}))
	t.Cleanup(srv.Close)
	if got := lines(c.ok("tags", strings.TrimPrefix(srv.URL, "http://")+"/a")); len(got) != 1 || got[0] != "t1" {
		t.Errorf("tags = %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(agents) != 1 || !agents["berth/"+v] {
		t.Errorf("User-Agents sent: %v, want only berth/%s", agents, v)
	}
}

// TestCLIExitCodes: usage mistakes are exit code 2 in every command, server commands
// included, and every command's help shows the table.
func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{
		{"bogus"},
		{"serve", "--no-such-flag"},
		{"serve", "extra-argument"},
		{"gc", "extra-argument"},
		{"migrate", "--nope"},
		{"user", "bogus"},
		{"user", "add"},
		{"version", "extra"},
		{"tags", "--nope", "x"},
		{"logout", "--insecure"},
		{"pull", "127.0.0.1:1/a:v1"},
	} {
		c.fails(cliExitUsage, []string{"berth:"}, args...)
	}
	c.fails(cliExitUsage, []string{`unknown command "pul"`, "pull"}, "pul", "x")
	if out := c.ok(); !strings.Contains(out, "Available Commands") {
		t.Errorf("berth without arguments does not print help:\n%s", out)
	}
	for _, cmd := range []string{"", "serve", "gc", "migrate", "user", "version", "login", "logout", "pull", "push", "copy", "ls", "tags", "inspect", "rm", "search"} {
		args := append(strings.Fields(cmd), "--help")
		if out := c.ok(args...); !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "2  usage") || !strings.Contains(out, "4  unauthorized") {
			t.Errorf("berth %s --help lacks the exit code table:\n%s", cmd, out)
		}
	}
	// Each command lists the flags it uses, and only those.
	for _, tc := range []struct {
		cmd        string
		has, lacks []string
	}{
		{"logout", []string{"--docker-config", "--quiet"}, []string{"--insecure", "--registry-mirror", "--certs-dir", "--client-config"}},
		{"push", []string{"--allow-nondistributable-artifacts", "--insecure", "--chunk-size"}, []string{"--registry-mirror", "--platform"}},
		{"pull", []string{"--registry-mirror", "--platform", "--output"}, []string{"--allow-nondistributable-artifacts", "--chunk-size"}},
		{"rm", []string{"--force", "--quiet"}, []string{"--registry-mirror", "--platform"}},
		{"tags", []string{"--page-size"}, []string{"--registry-mirror", "--allow-nondistributable-artifacts", "--quiet"}},
	} {
		out := c.ok(tc.cmd, "--help")
		for _, f := range tc.has {
			if !strings.Contains(out, f) {
				t.Errorf("berth %s --help lacks %s", tc.cmd, f)
			}
		}
		for _, f := range tc.lacks {
			if strings.Contains(out, f+" ") {
				t.Errorf("berth %s --help lists %s, which it does not use", tc.cmd, f)
			}
		}
	}
}

// TestCLIInsecure: --insecure reaches a plain-HTTP registry and a TLS registry whose
// certificate is not trusted, for that call only; under RootlessKit the certificates
// directory is the user's.
func TestCLIInsecure(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	img := newImage(t, "linux", "amd64", 1)
	reg.pushImage("e2e/insecure", "v1", img)
	host, resolve := hostOf(t, srv.Addr)
	c := newCLI(t)
	ref := host + "/e2e/insecure:v1"
	c.fails(cliExitFailure, []string{ref, "--insecure"}, "inspect", "--raw", ref, resolve)
	if got := c.ok("inspect", "--raw", ref, resolve, "--insecure"); got != string(img.Manifest.Data) {
		t.Errorf("inspect --insecure over plain HTTP: %q", got)
	}

	pki := newTestPKI(t)
	cert, key := pki.issue(t, "server", registryHost, true)
	dist := startDistribution(t, distOptions{cert: cert, key: key})
	thost, tresolve := hostOf(t, dist.Addr)
	ix := newIndex(t, "linux/amd64")
	src := filepath.Join(t.TempDir(), "src")
	ix.writeLayout(t, src, "v1")
	tref := thost + "/e2e/tls:v1"
	certs := t.TempDir()
	c.fails(cliExitFailure, []string{"certificate", "--insecure"}, "push", src, tref, tresolve, "--certs-dir", certs)
	c.ok("push", src, tref, tresolve, "--certs-dir", certs, "--insecure")
	// The next call without the flag is verified again.
	c.fails(cliExitFailure, []string{"certificate"}, "inspect", tref, tresolve, "--certs-dir", certs)

	// Rootless: $XDG_CONFIG_HOME/docker/certs.d is the default certificates directory.
	rootless := newCLI(t)
	rootless.env = append(rootless.env, "ROOTLESSKIT_STATE_DIR="+t.TempDir())
	rootless.fails(cliExitFailure, []string{"certificate"}, "inspect", tref, tresolve)
	copyTestFile(t, pki.CA, filepath.Join(rootless.home, ".config", "docker", "certs.d", thost, "ca.crt"))
	if got := rootless.ok("inspect", "--raw", tref, tresolve); got != string(ix.Manifest.Data) {
		t.Errorf("inspect with the rootless certificates directory: %q", got)
	}
}

// TestCLIPlatformsAndOutput: platform names as containerd reads them, an archive on
// standard output, -q, a missing output directory, and sizes printed one way.
func TestCLIPlatformsAndOutput(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	c := newCLI(t)
	ix := newIndex(t, "linux/amd64", "linux/arm64")
	reg.pushIndex("e2e/plat", "v1", ix)
	ref := srv.Addr + "/e2e/plat:v1"
	amd, arm := ix.Images[0].Manifest.Digest(), ix.Images[1].Manifest.Digest()
	for spec, want := range map[string]string{
		"linux/arm64/v8": arm, "linux/aarch64": arm, "aarch64": arm, "arm64": arm,
		"linux/x86_64": amd, "x86_64": amd, "linux/amd64": amd,
	} {
		if got := strings.TrimSpace(c.ok("inspect", "-q", ref, "--platform", spec)); got != want {
			t.Errorf("--platform %s picked %s, want %s", spec, got, want)
		}
	}
	c.fails(cliExitNotFound, []string{"linux/arm/v7", "linux/amd64, linux/arm64"}, "inspect", ref, "--platform", "linux/arm/v7")

	// -o -: a docker archive on standard output, the report on standard error.
	r := c.try("pull", ref, "--platform", "linux/arm64/v8", "-o", "-")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(strings.NewReader(r.stdout))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("standard output is not a tar archive: %v", err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	if _, ok := files["manifest.json"]; !ok || !strings.Contains(r.stderr, arm) {
		t.Fatalf("pull -o -: files %d, stderr %q", len(files), r.stderr)
	}
	archive := writeFile(t, t.TempDir(), "arm.tar", []byte(r.stdout))
	if got := strings.TrimSpace(c.ok("push", "-q", archive, srv.Addr+"/e2e/plat-back:v1")); got != arm {
		t.Errorf("push -q of the archive printed %q, want the digest %s", got, arm)
	}
	reg.checkImage("e2e/plat-back", ix.Images[1])
	c.fails(cliExitUsage, []string{"-o - writes a docker archive"}, "pull", ref, "-o", "-", "--format", "oci")

	// -q prints the digest alone; without it, a sentence.
	out := filepath.Join(t.TempDir(), "x.tar")
	if got := strings.TrimSpace(c.ok("pull", "-q", ref, "--platform", "linux/amd64", "-o", out)); got != amd {
		t.Errorf("pull -q printed %q, want %s", got, amd)
	}
	if got := strings.TrimSpace(c.ok("copy", "-q", ref, srv.Addr+"/e2e/plat-copy:v1", "--all-platforms")); got != ix.Manifest.Digest() {
		t.Errorf("copy -q printed %q", got)
	}
	if got := c.ok("rm", "-q", srv.Addr+"/e2e/plat-copy:v1"); got != "" {
		t.Errorf("rm -q printed %q", got)
	}

	// A missing output directory: a clear error before anything is downloaded.
	parent := filepath.Join(t.TempDir(), "no", "such")
	c.fails(cliExitFailure, []string{"directory " + parent + " does not exist"}, "pull", ref, "-o", filepath.Join(parent, "x.tar"))
	if _, err := os.Stat(filepath.Dir(parent)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed pull created %s", filepath.Dir(parent))
	}

	// Sizes: progress lines and inspect print them the same way.
	layer := ix.Images[0].Layers[0]
	want := humanSizeE2E(int64(len(layer.Data)))
	r = c.try("copy", srv.Addr+"/e2e/plat@"+amd, srv.Addr+"/e2e/plat-sizes:v1")
	if r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("copy progress lines lack the size %q of layer %s:\n%s", want, layer.Digest(), r)
	}
	if human := c.ok("inspect", srv.Addr+"/e2e/plat@"+amd); !strings.Contains(human, layer.Digest()+"  "+want) {
		t.Errorf("inspect lacks %s with the size %q:\n%s", layer.Digest(), want, human)
	}
}

// humanSizeE2E is how berth prints sizes: binary units, one decimal.
func humanSizeE2E(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n)/1024, "KMGTPE"
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// TestCLIRmReferenced: rm refuses to delete, by digest, a manifest that a tagged index
// lists, on berth and on the CNCF registry, unless --force; a registry's own refusal
// (409 MANIFEST_REFERENCED) gets a clear message.
func TestCLIRmReferenced(t *testing.T) {
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
			ix := newIndex(t, "linux/amd64", "linux/arm64")
			reg.pushIndex("e2e/rmref", "multi", ix)
			single := newImage(t, "linux", "amd64", 1)
			reg.pushImage("e2e/rmref", "single", single)
			child := ix.Images[1].Manifest.Digest()
			repo := addr + "/e2e/rmref"

			c.fails(cliExitFailure, []string{child, "multi", ix.Manifest.Digest(), "--force"}, "rm", repo+"@"+child)
			if st := reg.manifestStatus("e2e/rmref", child); st != http.StatusOK {
				t.Fatalf("the refused rm removed the manifest (%d)", st)
			}
			var res struct{ Category string }
			r := c.try("rm", "--json", repo+"@"+child)
			if err := json.Unmarshal([]byte(r.stderr), &res); err != nil || r.code != cliExitFailure || res.Category != "referenced" {
				t.Errorf("rm --json of a referenced manifest: %s (%v)", r, err)
			}
			// A manifest only tagged itself goes, with its tag.
			c.ok("rm", repo+"@"+single.Manifest.Digest())
			if kind == "distribution" {
				// The CNCF registry deletes what it is asked to: --force does it.
				c.ok("rm", "--force", repo+"@"+child)
				if st := reg.manifestStatus("e2e/rmref", child); st != http.StatusNotFound {
					t.Errorf("rm --force left the manifest (%d)", st)
				}
				return
			}
			// Once the index is gone, its children are free.
			c.ok("rm", repo+"@"+ix.Manifest.Digest())
			c.ok("rm", repo+"@"+child)
		})
	}
	t.Run("registry refuses", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.URL.Path == "/v2/":
				_, _ = w.Write([]byte("{}"))
			case r.Method == http.MethodDelete:
				w.WriteHeader(http.StatusConflict)
				_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_REFERENCED","message":"manifest referenced by an index"}]}`))
			default:
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`))
			}
		}))
		t.Cleanup(srv.Close)
		ref := strings.TrimPrefix(srv.URL, "http://") + "/a@sha256:" + strings.Repeat("ab", 32)
		newCLI(t).fails(cliExitFailure, []string{"MANIFEST_REFERENCED", "delete or retag the index first"}, "rm", "--force", ref)
	})
}

// TestCLISearchAndConfig: search filters, a Docker daemon.json as client configuration
// (keys berth does not use named with --debug only), and foreign layers pushed only where
// allowed.
func TestCLISearchAndConfig(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	c := newCLI(t)
	img := newImage(t, "linux", "amd64", 1)
	reg.pushImage("e2e/findme", "v1", img)
	if got := c.ok("search", srv.Addr, "findme", "--filter", "is-official=false"); !strings.Contains(got, "e2e/findme") {
		t.Errorf("search with is-official=false:\n%s", got)
	}
	for _, f := range []string{"stars=1", "is-official=true"} {
		if got := c.ok("search", srv.Addr, "findme", "-f", f); strings.Contains(got, "e2e/findme") {
			t.Errorf("search with %s kept the repository:\n%s", f, got)
		}
	}
	c.fails(cliExitUsage, []string{"stars=lots"}, "search", srv.Addr, "findme", "--filter", "stars=lots")

	host, resolve := hostOf(t, srv.Addr)
	daemonJSON := writeFile(t, t.TempDir(), "daemon.json", []byte("{\n\t\"log-driver\": \"journald\",\n\t\"insecure-registries\": [\""+host+"\"],\n\t\"storage-driver\": \"overlay2\",\n\t\"default-ulimits\": {\"nofile\": {\"Name\": \"nofile\", \"Hard\": 64000, \"Soft\": 64000}}\n}\n"))
	ref := host + "/e2e/findme:v1"
	r := c.try("inspect", "--raw", ref, resolve, "--client-config", daemonJSON)
	if r.code != 0 || r.stdout != string(img.Manifest.Data) || strings.Contains(r.stderr, "debug") {
		t.Errorf("inspect with a daemon.json: %s", r)
	}
	r = c.try("inspect", "--raw", ref, resolve, "--client-config", daemonJSON, "--debug")
	if r.code != 0 || !strings.Contains(r.stderr, "debug: client configuration "+daemonJSON+": ignoring keys berth does not use: default-ulimits, log-driver, storage-driver") {
		t.Errorf("inspect --debug with a daemon.json: %s", r)
	}
	old := writeFile(t, t.TempDir(), "client.yaml", []byte("certs-dir: /somewhere\n"))
	if r := c.try("tags", srv.Addr+"/e2e/findme", "--client-config", old); r.code != 0 || !strings.Contains(r.stderr, "use --certs-dir") {
		t.Errorf("a configuration with certs-dir: %s", r)
	}

	// A foreign layer goes only to a registry allowed to receive it.
	foreign := randomBytes(t, 3000)
	fdesc := map[string]any{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"digest": sha256Digest(foreign), "size": len(foreign), "urls": []string{"https://foreign.example/l.tgz"}}
	base := img.Layers[0]
	manifest := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mtOCIManifest,
		"config": img.Config.Descriptor(), "layers": []any{base.Descriptor(), fdesc}})
	layout := t.TempDir()
	for _, data := range [][]byte{foreign, base.Data, img.Config.Data, manifest} {
		writeFile(t, filepath.Join(layout, "blobs", "sha256"), strings.TrimPrefix(sha256Digest(data), "sha256:"), data)
	}
	writeFile(t, layout, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	writeFile(t, layout, "index.json", mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": mtOCIManifest, "digest": sha256Digest(manifest), "size": len(manifest),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": "v1"}}}}))
	c.ok("push", layout, srv.Addr+"/e2e/foreign-plain:v1")
	if st := reg.blobStatus("e2e/foreign-plain", sha256Digest(foreign)); st != http.StatusNotFound {
		t.Errorf("the foreign layer was pushed without permission (%d)", st)
	}
	c.ok("push", layout, srv.Addr+"/e2e/foreign-allowed:v1", "--allow-nondistributable-artifacts", srv.Addr)
	if st := reg.blobStatus("e2e/foreign-allowed", sha256Digest(foreign)); st != http.StatusOK {
		t.Errorf("the foreign layer was not pushed to an allowed registry (%d)", st)
	}
	if body, _, _ := reg.manifest("e2e/foreign-allowed", "v1"); !bytes.Equal(body, manifest) {
		t.Error("the manifest changed on the way")
	}
}
