package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func writeConfig(t *testing.T, v any) string {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://index.docker.io/v1/":     "index.docker.io",
		"docker.io":                       "index.docker.io",
		"registry-1.docker.io":            "index.docker.io",
		"http://Registry.Example:5000/v2": "registry.example:5000",
		"registry.example:5000":           "registry.example:5000",
		"https://user@host.example/path":  "host.example",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ServerAddress("docker.io"); got != "https://index.docker.io/v1/" {
		t.Errorf("ServerAddress(docker.io) = %q", got)
	}
	if got := ServerAddress("https://r.example:5000/"); got != "r.example:5000" {
		t.Errorf("ServerAddress(r.example) = %q", got)
	}
}

func TestConfigFileAuths(t *testing.T) {
	t.Parallel()
	p := writeConfig(t, map[string]any{
		"auths": map[string]any{
			"https://index.docker.io/v1/":   map[string]string{"auth": b64("hubuser:hubpass")},
			"http://registry.example:5000/": map[string]string{"auth": b64("alice:pa:ss")},
			"token.example":                 map[string]string{"auth": b64("bob:"), "identitytoken": "refresh-xyz"},
			"fields.example":                map[string]string{"username": "carol", "password": "pw"},
			"bad.example":                   map[string]string{"auth": "!!!"},
		},
		"psFormat": "keep me",
	})
	f := NewConfigFile(p)
	ctx := context.Background()
	for host, want := range map[string]Credentials{
		"docker.io":                  {Username: "hubuser", Password: "hubpass"},
		"registry-1.docker.io":       {Username: "hubuser", Password: "hubpass"},
		"registry.example:5000":      {Username: "alice", Password: "pa:ss"},
		"registry.example:5001":      {},
		"token.example":              {Username: "bob", IdentityToken: "refresh-xyz"},
		"fields.example":             {Username: "carol", Password: "pw"},
		"https://fields.example/v2/": {Username: "carol", Password: "pw"},
		"unknown.example":            {},
	} {
		got, err := f.Get(ctx, host)
		if err != nil || got != want {
			t.Errorf("Get(%q) = %+v, %v; want %+v", host, got, err, want)
		}
	}
	if _, err := f.Get(ctx, "bad.example"); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("bad auth: %v", err)
	}
	// A missing file is no credentials.
	if c, err := NewConfigFile(filepath.Join(t.TempDir(), "none.json")).Get(ctx, "docker.io"); err != nil || !c.Empty() {
		t.Errorf("missing file: %+v, %v", c, err)
	}
}

func TestConfigFileStoreErase(t *testing.T) {
	t.Parallel()
	p := writeConfig(t, map[string]any{"auths": map[string]any{}, "psFormat": "keep me"})
	f := NewConfigFile(p)
	ctx := context.Background()
	if err := f.Store(ctx, "https://registry.example:5000/v2/", Credentials{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Store(ctx, "docker.io", Credentials{Username: "hub", IdentityToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["psFormat"]) != `"keep me"` {
		t.Errorf("unknown field lost: %s", data)
	}
	var cfg Config
	_ = json.Unmarshal(data, &cfg)
	if e := cfg.Auths["registry.example:5000"]; e.Auth != b64("u:p") {
		t.Errorf("stored entry %+v in %s", e, data)
	}
	if e := cfg.Auths["https://index.docker.io/v1/"]; e.IdentityToken != "tok" || e.Auth != b64("hub:") {
		t.Errorf("hub entry %+v", e)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	if got, _ := f.Get(ctx, "registry.example:5000"); got != (Credentials{Username: "u", Password: "p"}) {
		t.Errorf("read back %+v", got)
	}
	if err := f.Erase(ctx, "registry.example:5000"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Get(ctx, "registry.example:5000"); !got.Empty() {
		t.Errorf("after Erase: %+v", got)
	}
	if err := f.Erase(ctx, "never.example"); err != nil {
		t.Errorf("erasing nothing: %v", err)
	}
	// Nothing temporary is left beside the file.
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries", len(entries))
	}
	// A new file in a new directory.
	nf := NewConfigFile(filepath.Join(t.TempDir(), "new", "config.json"))
	if err := nf.Store(ctx, "r.example", Credentials{Username: "a", Password: "b"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := nf.Get(ctx, "r.example"); got.Username != "a" {
		t.Errorf("new file: %+v", got)
	}
}

// helperScript is a credential helper keeping credentials as files in $STORE_DIR, named by
// the server URL with "/" and ":" replaced, and logging each call to $STORE_DIR/log.
const helperScript = `#!/bin/sh
set -eu
key() { printf '%s' "$1" | tr '/:' '__'; }
action=$1
input=$(cat)
echo "$action $input" >> "$STORE_DIR/log"
case $action in
get)
  f="$STORE_DIR/$(key "$input")"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  url=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
  printf '%s' "$input" > "$STORE_DIR/$(key "$url")" ;;
erase)
  rm -f "$STORE_DIR/$(key "$input")" ;;
list)
  echo '{}' ;;
*) echo "unknown action" >&2; exit 2 ;;
esac
`

func installHelper(t *testing.T) (binDir, storeDir string) {
	t.Helper()
	binDir, storeDir = t.TempDir(), t.TempDir()
	p := filepath.Join(binDir, "docker-credential-test")
	if err := os.WriteFile(p, []byte(helperScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return binDir, storeDir
}

func helperEnv(binDir, storeDir string) []string {
	return append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "STORE_DIR="+storeDir)
}

func readLog(t *testing.T, storeDir string) string {
	b, _ := os.ReadFile(filepath.Join(storeDir, "log"))
	return string(b)
}

func TestCredentialHelpers(t *testing.T) {
	// Not parallel: exec.LookPath of the helper uses this process's PATH.
	binDir, storeDir := installHelper(t)
	t.Setenv("PATH", binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("STORE_DIR", storeDir)
	ctx := context.Background()

	t.Run("credHelpers per registry", func(t *testing.T) {
		p := writeConfig(t, map[string]any{
			"credHelpers": map[string]string{"helped.example:5000": "test", "https://index.docker.io/v1/": "test"},
			"auths":       map[string]any{"plain.example": map[string]string{"auth": b64("file:user")}},
		})
		f := NewConfigFile(p)
		if err := f.Store(ctx, "helped.example:5000", Credentials{Username: "h", Password: "secret"}); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Get(ctx, "helped.example:5000"); err != nil || got != (Credentials{Username: "h", Password: "secret"}) {
			t.Fatalf("Get through helper = %+v, %v", got, err)
		}
		// The secret is in the helper, not in the file.
		data, _ := os.ReadFile(p)
		if strings.Contains(string(data), "secret") || strings.Contains(string(data), b64("h:secret")) {
			t.Errorf("secret written to the file: %s", data)
		}
		log := readLog(t, storeDir)
		if !strings.Contains(log, `store {"ServerURL":"helped.example:5000","Username":"h","Secret":"secret"}`) ||
			!strings.Contains(log, "get helped.example:5000") {
			t.Errorf("helper calls:\n%s", log)
		}
		// Docker Hub under its index key; identity tokens as "<token>".
		if err := f.Store(ctx, "docker.io", Credentials{IdentityToken: "refresh-abc"}); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.Get(ctx, "registry-1.docker.io"); got != (Credentials{IdentityToken: "refresh-abc"}) {
			t.Errorf("hub identity token = %+v", got)
		}
		if !strings.Contains(readLog(t, storeDir), "get https://index.docker.io/v1/") {
			t.Errorf("hub helper key:\n%s", readLog(t, storeDir))
		}
		// Registries without a helper come from the file.
		if got, _ := f.Get(ctx, "plain.example"); got != (Credentials{Username: "file", Password: "user"}) {
			t.Errorf("file entry = %+v", got)
		}
		// Not found in the helper: empty, no error.
		if err := f.Erase(ctx, "helped.example:5000"); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Get(ctx, "helped.example:5000"); err != nil || !got.Empty() {
			t.Errorf("after erase: %+v, %v", got, err)
		}
		if !strings.Contains(readLog(t, storeDir), "erase helped.example:5000") {
			t.Errorf("no erase call:\n%s", readLog(t, storeDir))
		}
	})

	t.Run("credsStore for all", func(t *testing.T) {
		p := writeConfig(t, map[string]any{"credsStore": "test"})
		f := NewConfigFile(p)
		if err := f.Store(ctx, "any.example", Credentials{Username: "x", Password: "y"}); err != nil {
			t.Fatal(err)
		}
		var cfg Config
		data, _ := os.ReadFile(p)
		_ = json.Unmarshal(data, &cfg)
		if e, ok := cfg.Auths["any.example"]; !ok || e != (AuthEntry{}) {
			t.Errorf("the file should keep an empty entry: %s", data)
		}
		if got, _ := f.Get(ctx, "any.example"); got != (Credentials{Username: "x", Password: "y"}) {
			t.Errorf("Get = %+v", got)
		}
	})

	t.Run("a failing or missing helper is an error", func(t *testing.T) {
		p := writeConfig(t, map[string]any{"credHelpers": map[string]string{"x.example": "absent"}})
		if _, err := NewConfigFile(p).Get(ctx, "x.example"); err == nil || !strings.Contains(err.Error(), "docker-credential-absent") {
			t.Errorf("missing helper: %v", err)
		}
		p = writeConfig(t, map[string]any{"credHelpers": map[string]string{"x.example": "../evil"}})
		if _, err := NewConfigFile(p).Get(ctx, "x.example"); err == nil {
			t.Error("helper name with a path accepted")
		}
	})
}

func TestHelperEnv(t *testing.T) {
	t.Parallel()
	binDir, storeDir := installHelper(t)
	p := writeConfig(t, map[string]any{"credsStore": "test"})
	f := NewConfigFile(p)
	f.HelperPrefix = filepath.Join(binDir, "docker-credential-")
	f.Env = helperEnv(binDir, storeDir)
	if err := f.Store(context.Background(), "e.example", Credentials{Username: "a", Password: "b"}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Get(context.Background(), "e.example"); err != nil || got.Password != "b" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

func TestHelperWithoutConfigFile(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nread addr\nif [ \"$addr\" = \"reg.example:5000\" ]; then printf '{\"ServerURL\":\"%s\",\"Username\":\"AWS\",\"Secret\":\"s3cret\"}' \"$addr\"; else echo 'credentials not found in native keychain'; exit 1; fi\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-t"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")}
	t.Setenv("PATH", env[0][len("PATH="):])
	get := Helper("t", env)
	c, err := get(context.Background(), "https://reg.example:5000")
	if err != nil || c.Username != "AWS" || c.Password != "s3cret" {
		t.Fatalf("Helper get = %+v, %v", c, err)
	}
	c, err = get(context.Background(), "other.example")
	if err != nil || !c.Empty() {
		t.Fatalf("Helper get of an unknown registry = %+v, %v; want none", c, err)
	}
	if _, err := Helper("no-such-helper-xyz", nil)(context.Background(), "reg.example"); err == nil {
		t.Fatal("a missing helper gave no error")
	}
}
