package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAuthDocker drives the Docker engine against berth in basic mode and in token mode:
// push refused before login, `docker login`, push and pull as admin, anonymous pull of
// public/* and nothing else (token mode; see below for basic), no anonymous push, the
// pull-only user refused a push, and a wrong password refused at login. In token mode the engine keeps the refresh token berth
// issues at login and uses it for the next push.
func TestAuthDocker(t *testing.T) {
	t.Parallel()
	lookPath(t, "docker")
	engine := startDockerd(t)
	for _, mode := range authModes {
		t.Run(mode, func(t *testing.T) {
			srv := startAuthBerth(t, exampleConfig(t, "auth-"+mode+".yaml"), nil)
			admin := srv.client(t, adminUser, adminPass)
			docker := engine.client(t)
			host := srv.Addr

			ctxDir := t.TempDir()
			writeFile(t, ctxDir, "hello.txt", randomBytes(t, 4096))
			writeFile(t, ctxDir, "Dockerfile", []byte("FROM scratch\nCOPY hello.txt /hello.txt\n"))
			ref, pub := host+"/team/app:v1", host+"/public/app:v1"
			docker.run("build", "-t", ref, ctxDir)
			docker.run("tag", ref, pub)
			imageID := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", ref))

			if out, errOut, err := docker.exec("push", ref); err == nil {
				t.Fatalf("push before login succeeded:\n%s%s", out, errOut)
			}
			if len(admin.catalog()) != 0 {
				t.Fatalf("a refused push stored %v", admin.catalog())
			}
			if _, errOut, err := docker.exec("login", "-u", adminUser, "-p", "wrong-password", host); err == nil {
				t.Fatal("docker login with a wrong password succeeded")
			} else if !strings.Contains(strings.ToLower(errOut), "unauthorized") {
				t.Errorf("docker login with a wrong password: %s", errOut)
			}
			if out := docker.run("login", "-u", adminUser, "-p", adminPass, host); !strings.Contains(out, "Login Succeeded") {
				t.Fatalf("docker login: %s", out)
			}
			if mode == "token" {
				cfg := readDockerConfig(t, docker)
				if !strings.Contains(cfg, `"identitytoken"`) {
					t.Errorf("no refresh token kept by the engine after login:\n%s", cfg)
				}
			}
			out := docker.run("push", ref)
			m := pushDigest.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no digest in docker push output:\n%s", out)
			}
			if _, _, served := admin.manifest("team/app", "v1"); served != m[1] {
				t.Fatalf("berth serves %s, docker pushed %s", served, m[1])
			}
			docker.run("push", pub)
			if mode == "token" && !strings.Contains(srv.log.String(), "grant=refresh_token") {
				t.Error("the engine never used its refresh token")
			}
			docker.run("rmi", ref, pub)
			docker.run("pull", ref)
			if got := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", ref)); got != imageID {
				t.Errorf("pulled image %s, pushed %s", got, imageID)
			}

			// Anonymous: public/* may be pulled, nothing else, and nothing pushed. The engine
			// sends no request without credentials after a Basic challenge ("no basic auth
			// credentials"), so anonymous engine pulls need token mode; in basic mode the same
			// rules hold for clients that do send anonymous requests.
			docker.run("logout", host)
			if mode == "token" {
				docker.run("rmi", ref)
				docker.run("pull", pub)
				if _, errOut, err := docker.exec("pull", ref); err == nil {
					t.Error("anonymous pull of a private repository succeeded")
				} else if !strings.Contains(errOut, "denied") && !strings.Contains(errOut, "unauthorized") {
					t.Errorf("anonymous pull of a private repository: %s", errOut)
				}
			} else {
				anon := srv.client(t, "", "")
				anon.manifest("public/app", "v1")
				if st := anon.manifestStatus("team/app", "v1"); st != 401 {
					t.Errorf("anonymous GET of a private manifest: %d", st)
				}
			}
			docker.run("tag", imageID, host+"/public/app:v2")
			if _, _, err := docker.exec("push", host+"/public/app:v2"); err == nil {
				t.Error("anonymous push to public/app succeeded")
			}
			if tags := admin.tags("public/app"); !slices.Equal(tags, []string{"v1"}) {
				t.Errorf("public/app tags after a refused anonymous push: %v", tags)
			}

			// The pull-only user: pull yes, push no.
			docker.run("login", "-u", readerUser, "-p", readerPass, host)
			_, _, _ = docker.exec("rmi", ref) // present in basic mode only
			docker.run("pull", ref)
			docker.run("tag", ref, host+"/team/app:v2")
			if _, errOut, err := docker.exec("push", host+"/team/app:v2"); err == nil {
				t.Error("the pull-only user pushed")
			} else if !strings.Contains(errOut, "denied") {
				t.Errorf("refused push by the pull-only user: %s", errOut)
			}
			if tags := admin.tags("team/app"); !slices.Equal(tags, []string{"v1"}) {
				t.Errorf("team/app tags after a refused push: %v", tags)
			}
		})
	}
}

// readDockerConfig returns the CLI's config.json.
func readDockerConfig(t testing.TB, docker *tool) string {
	t.Helper()
	dir := ""
	for _, kv := range docker.env { // the last setting wins, as for exec
		if d, ok := strings.CutPrefix(kv, "DOCKER_CONFIG="); ok {
			dir = d
		}
	}
	if dir == "" {
		t.Fatal("no DOCKER_CONFIG in the client's environment")
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
