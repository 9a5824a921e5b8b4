package client_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/service"
	"github.com/berthhq/berth/client/transport"
	"github.com/berthhq/berth/internal/testenv"
)

// The integration tests run real registries on loopback: berth, built from this checkout,
// and the CNCF distribution registry, installed by ../shared/tools/install-peers.sh.

var env struct {
	work string // scratch directory of the run

	berthOnce sync.Once
	berthBin  string
	berthErr  error

	distOnce sync.Once
	distBin  string
	distErr  error
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	env.work, err = os.MkdirTemp("", "berth-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(env.work)
	return m.Run()
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// missing fails the test in CI (CI=true) and skips it elsewhere.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "missing dependency: " + fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// berthBinary builds ./cmd/berth once per run. A build failure fails the test: it is this
// repository's own code.
func berthBinary(t testing.TB) string {
	t.Helper()
	env.berthOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			env.berthErr = err
			return
		}
		out := filepath.Join(env.work, "berth")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/berth")
		cmd.Dir = root
		if output, err := cmd.CombinedOutput(); err != nil {
			env.berthErr = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, output)
			return
		}
		env.berthBin = out
	})
	if env.berthErr != nil {
		t.Fatal(env.berthErr)
	}
	return env.berthBin
}

// distributionBinary installs the pinned distribution registry once per run.
func distributionBinary(t testing.TB) string {
	t.Helper()
	env.distOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			env.distErr = err
			return
		}
		script := filepath.Join(root, "..", "shared", "tools", "install-peers.sh")
		if _, err := os.Stat(script); err != nil {
			env.distErr = fmt.Errorf("%s: %v", script, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "bash", script, "distribution")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			env.distErr = fmt.Errorf("%s distribution: %v\n%s", script, err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		bin := filepath.Join(strings.TrimSpace(lines[len(lines)-1]), "registry")
		if _, err := os.Stat(bin); err != nil {
			env.distErr = fmt.Errorf("install-peers.sh printed no usable directory: %v", err)
			return
		}
		env.distBin = bin
	})
	if env.distErr != nil {
		missing(t, "the distribution registry: %v", env.distErr)
	}
	return env.distBin
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const readyTimeout = 30 * time.Second

// startProcess runs a server until the test ends, waiting until ready reports true (polled
// with a deadline); its output is shown if the test fails.
func startProcess(t testing.TB, name, bin string, args []string, ready func() bool) {
	t.Helper()
	log := &testenv.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			out := log.String()
			if len(out) > 32<<10 {
				out = out[len(out)-32<<10:]
			}
			t.Logf("%s output:\n%s", name, out)
		}
	})
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v", name, readyTimeout)
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready:\n%s", name, log.String())
		case <-tick.C:
		}
	}
}

func httpReady(url string, statuses ...int) func() bool {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	return func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		for _, s := range statuses {
			if resp.StatusCode == s {
				return true
			}
		}
		return false
	}
}

func tcpReady(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

// startBerth runs `berth serve` and returns its "127.0.0.1:PORT".
func startBerth(t testing.TB) string {
	t.Helper()
	bin := berthBinary(t)
	addr := freeAddr(t)
	startProcess(t, "berth", bin, []string{"serve", "--addr", addr, "--data", t.TempDir()},
		httpReady("http://"+addr+"/v2/", http.StatusOK))
	return addr
}

// distOptions configure a distribution registry.
type distOptions struct {
	htpasswd  string // path of an htpasswd file: Basic authentication
	tlsCert   string // server certificate and key: HTTPS
	tlsKey    string
	clientCAs string // CA of client certificates: mutual TLS
	allowURLs string // regular expression of the layer URLs manifests may carry
}

// startDistribution runs the distribution registry and returns its "127.0.0.1:PORT".
func startDistribution(t testing.TB, o distOptions) string {
	t.Helper()
	bin := distributionBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&cfg, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", filepath.Join(dir, "data"))
	fmt.Fprintf(&cfg, "  maintenance:\n    uploadpurging:\n      enabled: false\n")
	fmt.Fprintf(&cfg, "http:\n  addr: %s\n  secret: berth-client-test\n", addr)
	if o.tlsCert != "" {
		fmt.Fprintf(&cfg, "  tls:\n    certificate: %s\n    key: %s\n", o.tlsCert, o.tlsKey)
		if o.clientCAs != "" {
			fmt.Fprintf(&cfg, "    clientcas:\n      - %s\n", o.clientCAs)
		}
	}
	if o.allowURLs != "" {
		fmt.Fprintf(&cfg, "validation:\n  manifests:\n    urls:\n      allow:\n        - %q\n", o.allowURLs)
	}
	if o.htpasswd != "" {
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", o.htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := httpReady("http://"+addr+"/v2/", http.StatusOK, http.StatusUnauthorized)
	if o.tlsCert != "" {
		ready = tcpReady(addr)
	}
	startProcess(t, "distribution", bin, []string{"serve", cfgPath}, ready)
	return addr
}

// newClient returns a client for tests: anonymous unless options say otherwise, with quick
// retries and its own empty certificates directory.
func newClient(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	svc, err := service.New(service.Options{CertsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	all := append([]client.Option{
		client.WithService(svc),
		client.WithCredentials(nil),
		client.WithUserAgent("berth-client-test"),
		client.WithRetry(transport.RetryOptions{Attempts: 3, Backoff: 10 * time.Millisecond}),
	}, opts...)
	c, err := client.New(all...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRef(t testing.TB, s string) client.Reference {
	t.Helper()
	r, err := client.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// randomBytes returns n reproducible pseudo-random bytes for seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
