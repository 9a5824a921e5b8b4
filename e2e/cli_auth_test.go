package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dockerConfigEntry reads the auths entry of registry from the CLI's Docker config file.
func dockerConfigEntry(t testing.TB, c *cli, registry string) (map[string]string, bool) {
	t.Helper()
	data, err := os.ReadFile(c.dockerConfig())
	if os.IsNotExist(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]map[string]string `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v\n%s", c.dockerConfig(), err, data)
	}
	e, ok := cfg.Auths[registry]
	return e, ok
}

// TestCLILoginToken logs in to berth in token mode (a Bearer challenge answered by its
// token service), pushes and pulls with the stored credentials, and checks wrong
// passwords, missing rights and logout.
func TestCLILoginToken(t *testing.T) {
	t.Parallel()
	srv := startAuthBerth(t, exampleConfig(t, "auth-token.yaml"), nil)
	c := newCLI(t)
	ref := srv.Addr + "/e2e/private:v1"
	ix := newIndex(t, "linux/amd64")
	src := filepath.Join(t.TempDir(), "src")
	ix.writeLayout(t, src, "v1")

	c.fails(cliExitUnauthorized, []string{"e2e/private", "401"}, "push", src, ref)
	r := c.tryStdin("wrong-password\n", "login", srv.Addr, "-u", adminUser, "--password-stdin")
	if r.code != cliExitUnauthorized || !strings.Contains(r.stderr, "wrong user name or password") {
		t.Fatalf("login with a wrong password: want exit 4, got %s", r)
	}
	if _, ok := dockerConfigEntry(t, c, srv.Addr); ok {
		t.Fatal("a failed login stored credentials")
	}

	r = c.tryStdin(adminPass+"\n", "login", srv.Addr, "-u", adminUser, "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %s", r)
	}
	entry, ok := dockerConfigEntry(t, c, srv.Addr)
	if !ok || (entry["auth"] == "" && entry["identitytoken"] == "") {
		t.Fatalf("login stored %v in %s", entry, c.dockerConfig())
	}

	c.ok("push", src, ref)
	srv.client(t, adminUser, adminPass).checkIndex("e2e/private", "v1", ix)
	c.ok("pull", ref, "--all-platforms", "-o", filepath.Join(t.TempDir(), "out"))
	if got := lines(c.ok("ls", srv.Addr)); !strings.Contains(strings.Join(got, " "), "e2e/private") {
		t.Errorf("ls as admin = %v", got)
	}

	// A user that may only pull is denied a push: exit code 4 too.
	reader := newCLI(t)
	reader.tryStdin(readerPass, "login", srv.Addr, "-u", readerUser, "--password-stdin")
	reader.ok("inspect", ref)
	reader.fails(cliExitUnauthorized, []string{"e2e/private"}, "copy", ref, srv.Addr+"/e2e/other:v1")

	c.ok("logout", srv.Addr)
	if _, ok := dockerConfigEntry(t, c, srv.Addr); ok {
		t.Fatal("logout left the credentials")
	}
	c.fails(cliExitUnauthorized, []string{"e2e/private:v1"}, "pull", ref, "-o", filepath.Join(t.TempDir(), "x.tar"))
}

// TestCLILoginBasic logs in to the CNCF registry with htpasswd (Basic authentication).
func TestCLILoginBasic(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{htpasswd: htpasswdFile(t, "alice", "alice-secret")})
	c := newCLI(t)
	ref := dist.Addr + "/e2e/basic:v1"
	img := newIndex(t, "linux/amd64")
	src := filepath.Join(t.TempDir(), "src")
	img.writeLayout(t, src, "v1")

	c.fails(cliExitUnauthorized, []string{"e2e/basic"}, "push", src, ref)
	if r := c.tryStdin("nope\n", "login", dist.Addr, "-u", "alice", "--password-stdin"); r.code != cliExitUnauthorized {
		t.Fatalf("login with a wrong password: want exit 4, got %s", r)
	}
	c.tryStdin("alice-secret\n", "login", "http://"+dist.Addr+"/", "-u", "alice", "--password-stdin")
	entry, ok := dockerConfigEntry(t, c, dist.Addr)
	if !ok || entry["auth"] == "" {
		t.Fatalf("login stored no auth for %s in %s", dist.Addr, c.dockerConfig())
	}
	c.ok("push", src, ref)
	if got := lines(c.ok("tags", dist.Addr+"/e2e/basic")); len(got) != 1 || got[0] != "v1" {
		t.Errorf("tags = %v", got)
	}
	c.ok("logout", dist.Addr)
	c.fails(cliExitUnauthorized, nil, "tags", dist.Addr+"/e2e/basic")
}

// credentialHelper writes a Docker credential helper (docker-credential-NAME) that keeps
// one registry's credentials in a file and logs each call, and returns its directory.
func credentialHelper(t testing.TB, name string) (dir, calls string) {
	t.Helper()
	dir = t.TempDir()
	store := filepath.Join(dir, "creds.json")
	calls = filepath.Join(dir, "calls.log")
	script := `#!/bin/sh
# A credential helper for tests: one registry's credentials in a file.
store='` + store + `'
echo "$1" >> '` + calls + `'
case "$1" in
store) cat > "$store" ;;
get)
  read -r server
  if [ -f "$store" ] && grep -q "\"ServerURL\":\"$server\"" "$store"; then cat "$store"; exit 0; fi
  echo "credentials not found in native keychain"; exit 1 ;;
erase) rm -f "$store" ;;
list) echo '{}' ;;
*) exit 1 ;;
esac
`
	p := writeFile(t, dir, "docker-credential-"+name, []byte(script))
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, calls
}

// TestCLICredentialHelper stores credentials through a credential helper named by the
// Docker config file (credsStore), and uses them from there.
func TestCLICredentialHelper(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{htpasswd: htpasswdFile(t, "bob", "bob-secret")})
	c := newCLI(t)
	helperDir, calls := credentialHelper(t, "berthtest")
	c.env = append(c.env, "PATH="+helperDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	writeFile(t, filepath.Dir(c.dockerConfig()), "config.json", []byte(`{"credsStore":"berthtest","experimental":"keep-me"}`))

	r := c.tryStdin("bob-secret\n", "login", dist.Addr, "-u", "bob", "--password-stdin", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, "docker-credential-berthtest") {
		t.Fatalf("login through the helper: %s", r)
	}
	stored, err := os.ReadFile(filepath.Join(helperDir, "creds.json"))
	if err != nil || !strings.Contains(string(stored), `"Secret":"bob-secret"`) {
		t.Fatalf("the helper holds %q (%v)", stored, err)
	}
	if entry, _ := dockerConfigEntry(t, c, dist.Addr); entry["auth"] != "" {
		t.Errorf("the password went into the config file too: %v", entry)
	}
	cfg, _ := os.ReadFile(c.dockerConfig())
	if !strings.Contains(string(cfg), "keep-me") {
		t.Errorf("login dropped a key of the config file:\n%s", cfg)
	}

	img := newIndex(t, "linux/amd64")
	src := filepath.Join(t.TempDir(), "src")
	img.writeLayout(t, src, "v1")
	c.ok("push", src, dist.Addr+"/e2e/helper:v1")
	if log, _ := os.ReadFile(calls); !strings.Contains(string(log), "get") {
		t.Errorf("the push did not ask the helper for credentials; calls: %q", log)
	}
	c.ok("logout", dist.Addr)
	if _, err := os.Stat(filepath.Join(helperDir, "creds.json")); !os.IsNotExist(err) {
		t.Errorf("logout left the helper's credentials (%v)", err)
	}
	c.fails(cliExitUnauthorized, nil, "tags", dist.Addr+"/e2e/helper")
}
