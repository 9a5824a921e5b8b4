package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestConfigMistakes runs `berth serve` on configurations written with the old integer keys
// and with typos: it stops with exit code 2 and one line per problem, naming the key to write
// (the value in its new form) or the key meant; the same in BERTH_* variables. Durations
// written as Go durations start the server.
func TestConfigMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", []byte(`gc:
  intervalHours: 12
  grace: 24
uploads:
  maxAgeHours: 48
storage:
  rooot: /srv
registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream:
      url: https://registry.example
      timeoutSeconds: 30
    tagTTLSeconds: 300
    probeInteval: 10s
retention:
  - repositories: ["**"]
    untaggedAfterHours: 72
log:
  colour: true
`))
	out, code := berthCmd(t, "", "serve", "--config", bad, "--addr", freeAddr(t), "--data", t.TempDir())
	if code != 2 {
		t.Errorf("exit code %d, want 2:\n%s", code, out)
	}
	for _, want := range []string{
		"line 2: gc.intervalHours was renamed: write gc.interval: 12h",
		`line 3: gc.grace: "24" needs a unit: write a duration like 90s, 5m or 24h`,
		"line 5: uploads.maxAgeHours was renamed: write uploads.maxAge: 48h",
		"line 7: storage.rooot names no setting or registered storage driver; did you mean storage.root?",
		"line 14: registries[0].upstream.timeoutSeconds was renamed: write registries[0].upstream.timeout: 30s",
		"line 15: registries[0].tagTTLSeconds was renamed: write registries[0].tagTTL: 5m",
		"line 16: registries[0].probeInteval names no setting; did you mean registries[0].probeInterval?",
		"line 19: retention[0].untaggedAfterHours was renamed: write retention[0].untaggedAfter: 72h",
		"line 21: log.colour names no setting (known in log: audit, format, level)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBinary(t), "serve", "--addr", freeAddr(t), "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "BERTH_GC_GRACEHOURS=6", "BERTH_AUTH_TOKEN_TTLSECONDS=600", "BERTH_LOG_LEVL=debug", "BERTH_UPLOADS_MAXAGE=48")
	envOut, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("with bad variables: %v, want exit code 2:\n%s", err, envOut)
	}
	for _, want := range []string{
		"environment variable BERTH_GC_GRACEHOURS was renamed: set BERTH_GC_GRACE=6h",
		"environment variable BERTH_AUTH_TOKEN_TTLSECONDS was renamed: set BERTH_AUTH_TOKEN_TTL=10m",
		"environment variable BERTH_LOG_LEVL names no setting; did you mean BERTH_LOG_LEVEL?",
		`environment variable BERTH_UPLOADS_MAXAGE: "48" is not a duration`,
	} {
		if !strings.Contains(string(envOut), want) {
			t.Errorf("output lacks %q:\n%s", want, envOut)
		}
	}

	good := writeFile(t, dir, "good.yaml", []byte(`gc: {interval: 12h, grace: 90m}
uploads: {maxAge: 36h}
retention:
  - repositories: ["**"]
    untaggedAfter: 72h
registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream: {url: "http://127.0.0.1:1", timeout: 2s}
    tagTTL: 0s
    notFoundTTL: 1m
    catalogTTL: 0s
    probeInterval: 1h
`))
	srv := startBerth(t, "--config", good)
	resp, err := http.Get(srv.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/: %s", resp.Status)
	}
}
