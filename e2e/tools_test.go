package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const toolTimeout = 5 * time.Minute

// clientEnv returns an environment whose home, config, cache and runtime directories are
// fresh temporary ones, so clients neither read nor change the machine's configuration, and
// whose proxy settings leave loopback alone.
func clientEnv(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	dirs := map[string]string{
		"HOME":            home,
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"),
		"XDG_CACHE_HOME":  filepath.Join(home, ".cache"),
		"XDG_DATA_HOME":   filepath.Join(home, ".local", "share"),
		"XDG_RUNTIME_DIR": filepath.Join(home, "run"),
		"DOCKER_CONFIG":   filepath.Join(home, ".docker"),
	}
	env := os.Environ()
	for k, v := range dirs {
		if err := os.MkdirAll(v, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+v)
	}
	return append(env,
		"REGCTL_CONFIG="+filepath.Join(home, ".regctl", "config.json"),
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
	)
}

// tool runs one client binary in a fixed environment and working directory.
type tool struct {
	t   testing.TB
	bin string
	env []string
	dir string
}

func newTool(t testing.TB, bin string, env []string) *tool {
	return &tool{t: t, bin: bin, env: env, dir: t.TempDir()}
}

// exec runs the tool and returns stdout, stderr and the error, without judging.
func (c *tool) exec(args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// run runs the tool, fails the test if it fails, and returns its stdout.
func (c *tool) run(args ...string) string {
	c.t.Helper()
	stdout, stderr, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(c.bin), strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// writeFile writes a file under dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines splits output into trimmed non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
