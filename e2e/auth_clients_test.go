package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// authModes are the example configurations the client tests run against.
var authModes = []string{"basic", "token"}

// TestAuthClients pushes and pulls with skopeo, crane, oras and regctl logged in as the
// demonstration users, in basic mode and in token mode, and checks that the pull-only user
// cannot push.
func TestAuthClients(t *testing.T) {
	t.Parallel()
	for _, mode := range authModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := startAuthBerth(t, exampleConfig(t, "auth-"+mode+".yaml"), nil)
			admin := srv.client(t, adminUser, adminPass)
			host := srv.Addr
			ix := newIndex(t, "linux/amd64", "linux/arm64")
			layout := filepath.Join(t.TempDir(), "layout")
			ix.writeLayout(t, layout, "v1")
			// denied checks that a refused push left no repository behind.
			denied := func(t *testing.T, repo string, err error, out string) {
				t.Helper()
				if err == nil {
					t.Errorf("the pull-only user pushed to %s:\n%s", repo, out)
				}
				if slices.Contains(admin.catalog(), repo) {
					t.Errorf("a refused push created %s", repo)
				}
			}

			t.Run("skopeo", func(t *testing.T) {
				t.Parallel()
				skopeo := newTool(t, lookPath(t, "skopeo"), clientEnv(t))
				policy := writeFile(t, t.TempDir(), "policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
				dst := "docker://" + host + "/clients/skopeo:v1"
				skopeo.run("--policy", policy, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
					"--dest-creds", adminUser+":"+adminPass, "oci:"+layout+":v1", dst)
				admin.checkIndex("clients/skopeo", "v1", ix)
				raw := skopeo.run("inspect", "--raw", "--tls-verify=false", "--creds", readerUser+":"+readerPass, dst)
				if got := sha256Digest([]byte(raw)); got != ix.Manifest.Digest() {
					t.Errorf("skopeo inspect as reader: %s, want %s", got, ix.Manifest.Digest())
				}
				out := filepath.Join(t.TempDir(), "out")
				skopeo.run("--policy", policy, "copy", "--all", "--src-tls-verify=false", "--src-creds", readerUser+":"+readerPass,
					dst, "oci:"+out+":v1")
				if _, _, err := skopeo.exec("inspect", "--raw", "--tls-verify=false", dst); err == nil {
					// Anonymous callers may not read clients/*: without credentials this fails.
					t.Error("skopeo inspect without credentials succeeded on a private repository")
				}
				stdout, stderr, err := skopeo.exec("--policy", policy, "copy", "--all", "--dest-tls-verify=false",
					"--dest-creds", readerUser+":"+readerPass, "oci:"+layout+":v1", "docker://"+host+"/clients/skopeo-denied:v1")
				denied(t, "clients/skopeo-denied", err, stdout+stderr)
			})

			t.Run("crane", func(t *testing.T) {
				t.Parallel()
				crane := newTool(t, peer(t, "crane"), clientEnv(t))
				crane.run("auth", "login", host, "-u", adminUser, "-p", adminPass)
				crane.run("push", layout, host+"/clients/crane:v1", "--insecure")
				admin.checkIndex("clients/crane", "v1", ix)
				if got := strings.TrimSpace(crane.run("digest", host+"/clients/crane:v1", "--insecure")); got != ix.Manifest.Digest() {
					t.Errorf("crane digest: %s, want %s", got, ix.Manifest.Digest())
				}
				crane.run("auth", "login", host, "-u", readerUser, "-p", readerPass)
				cfg := ix.Images[0].Config
				if got := crane.run("blob", host+"/clients/crane@"+cfg.Digest(), "--insecure"); got != string(cfg.Data) {
					t.Errorf("crane blob as reader: %q", got)
				}
				stdout, stderr, err := crane.exec("push", layout, host+"/clients/crane-denied:v1", "--insecure")
				denied(t, "clients/crane-denied", err, stdout+stderr)
			})

			t.Run("oras", func(t *testing.T) {
				t.Parallel()
				oras := newTool(t, peer(t, "oras"), clientEnv(t))
				payload := randomBytes(t, 10000)
				writeFile(t, oras.dir, "payload.bin", payload)
				oras.run("login", host, "-u", adminUser, "-p", adminPass, "--plain-http")
				oras.run("push", "--plain-http", host+"/clients/oras:v1", "payload.bin:application/octet-stream")
				if !bytes.Equal(admin.blob("clients/oras", sha256Digest(payload)), payload) {
					t.Fatal("the pushed file differs")
				}
				oras.run("login", host, "-u", readerUser, "-p", readerPass, "--plain-http")
				out := t.TempDir()
				oras.run("pull", "--plain-http", "-o", out, host+"/clients/oras:v1")
				if got, err := os.ReadFile(filepath.Join(out, "payload.bin")); err != nil || !bytes.Equal(got, payload) {
					t.Errorf("oras pull as reader: %d bytes, %v", len(got), err)
				}
				stdout, stderr, err := oras.exec("push", "--plain-http", host+"/clients/oras-denied:v1", "payload.bin:application/octet-stream")
				denied(t, "clients/oras-denied", err, stdout+stderr)
			})

			t.Run("regctl", func(t *testing.T) {
				t.Parallel()
				regctl := newTool(t, peer(t, "regctl"), clientEnv(t))
				// A registry that wants credentials answers the connectivity check with 401.
				regctl.run("registry", "set", host, "--tls", "disabled", "--skip-check")
				regctl.run("registry", "login", host, "-u", adminUser, "-p", adminPass)
				regctl.run("image", "copy", "ocidir://"+layout+":v1", host+"/clients/regctl:v1")
				admin.checkIndex("clients/regctl", "v1", ix)
				regctl.run("registry", "login", host, "-u", readerUser, "-p", readerPass)
				if got := strings.TrimSpace(regctl.run("image", "digest", host+"/clients/regctl:v1")); got != ix.Manifest.Digest() {
					t.Errorf("regctl image digest as reader: %s", got)
				}
				layer := ix.Images[1].Layers[0]
				if got := regctl.run("blob", "get", host+"/clients/regctl", layer.Digest()); got != string(layer.Data) {
					t.Error("regctl blob get as reader: content differs")
				}
				stdout, stderr, err := regctl.exec("image", "copy", "ocidir://"+layout+":v1", host+"/clients/regctl-denied:v1")
				denied(t, "clients/regctl-denied", err, stdout+stderr)
			})
		})
	}
}
