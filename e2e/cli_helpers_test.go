package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Exit codes of berth's client commands.
const (
	cliExitFailure      = 1
	cliExitUsage        = 2
	cliExitNotFound     = 3
	cliExitUnauthorized = 4
)

// cli runs `berth` client commands in a private environment (HOME, DOCKER_CONFIG and
// XDG_CONFIG_HOME are temporary directories).
type cli struct {
	*tool
	home string
}

func newCLI(t testing.TB) *cli {
	t.Helper()
	env := clientEnv(t)
	c := &cli{tool: newTool(t, berthBinary(t), env)}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			c.home = v
		}
	}
	return c
}

// dockerConfig returns the Docker config file the CLI reads credentials from.
func (c *cli) dockerConfig() string {
	return filepath.Join(c.home, ".docker", "config.json")
}

// cliResult is one run of the CLI.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("berth %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// try runs the CLI and returns what happened, without judging.
func (c *cli) try(args ...string) cliResult {
	c.t.Helper()
	return c.tryStdin("", args...)
}

// tryStdin runs the CLI with stdin.
func (c *cli) tryStdin(stdin string, args ...string) cliResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		c.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the CLI and fails the test unless it succeeds; it returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.try(args...)
	if r.code != 0 {
		c.t.Fatalf("%s", r)
	}
	return r.stdout
}

// fails runs the CLI and fails the test unless it exits with code and its stderr holds
// every one of want.
func (c *cli) fails(code int, want []string, args ...string) cliResult {
	c.t.Helper()
	r := c.try(args...)
	if r.code != code {
		c.t.Fatalf("want exit %d, got %s", code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			c.t.Errorf("stderr lacks %q: %s", w, r)
		}
	}
	return r
}

// distributionBinary returns the CNCF registry (install-peers.sh distribution).
func distributionBinary(t testing.TB) string {
	t.Helper()
	return peer(t, "distribution")
}

// distOptions configure a distribution registry.
type distOptions struct {
	htpasswd  string // file; Basic authentication when set
	cert, key string // TLS when set
	clientCA  string // client certificates required, signed by this CA
}

// distServer is a running CNCF registry.
type distServer struct {
	Addr string
}

// startDistribution runs the CNCF registry on a free loopback port until the test ends.
func startDistribution(t testing.TB, o distOptions) *distServer {
	t.Helper()
	bin := distributionBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := []string{
		"version: 0.1",
		"log:", "  level: warn", "  accesslog:", "    disabled: true",
		"storage:", "  filesystem:", "    rootdirectory: " + filepath.Join(dir, "data"), "  delete:", "    enabled: true",
		"  maintenance:", "    uploadpurging:", "      enabled: false",
		"http:", "  addr: " + addr,
	}
	if o.cert != "" {
		cfg = append(cfg, "  tls:", "    certificate: "+o.cert, "    key: "+o.key)
		if o.clientCA != "" {
			cfg = append(cfg, "    clientcas:", "      - "+o.clientCA)
		}
	}
	if o.htpasswd != "" {
		cfg = append(cfg, "auth:", "  htpasswd:", "    realm: berth-e2e", "    path: "+o.htpasswd)
	}
	cfgPath := writeFile(t, dir, "config.yml", []byte(strings.Join(cfg, "\n")+"\n"))
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start distribution: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("distribution output (%s):\n%s", addr, tail(log.String(), 32<<10))
		}
	})
	scheme := "http"
	tr := &http.Transport{Proxy: nil}
	if o.cert != "" {
		scheme = "https"
		// Readiness only: any answer means the server listens.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // readiness probe of a test server
	}
	hc := &http.Client{Timeout: time.Second, Transport: tr}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return &distServer{Addr: addr}
		}
		if o.clientCA != "" && strings.Contains(err.Error(), "certificate") {
			return &distServer{Addr: addr} // it answers, asking for a client certificate
		}
		if time.Now().After(deadline) {
			t.Fatalf("distribution on %s not ready after %v: %v\n%s", addr, readyTimeout, err, log.String())
		}
		select {
		case <-exited:
			t.Fatalf("distribution exited before it was ready:\n%s", log.String())
		case <-tick.C:
		}
	}
}

// htpasswdFile writes an htpasswd file with one bcrypt user.
func htpasswdFile(t testing.TB, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "htpasswd", []byte(user+":"+string(h)+"\n"))
}

// testPKI is a CA with the files a TLS registry and its clients need.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	CA   string // CA certificate, PEM file
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{cert: cert, key: key, dir: t.TempDir()}
	p.CA = writeFile(t, p.dir, "ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return p
}

// issue writes a certificate and key signed by the CA: for a server, valid for dnsName and
// 127.0.0.1; otherwise a client certificate.
func (p *testPKI) issue(t testing.TB, name, dnsName string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{dnsName}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, p.dir, name+".cert", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile = writeFile(t, p.dir, name+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

// copyFile copies src to dst, creating dst's directory.
func copyTestFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(dst), filepath.Base(dst), data)
}

// leftovers lists the entries of dir other than the expected ones: temporary files a
// failed command must not leave behind.
func leftovers(t testing.TB, dir string, expected ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		keep := false
		for _, x := range expected {
			keep = keep || e.Name() == x
		}
		if !keep {
			out = append(out, e.Name())
		}
	}
	return out
}

// layoutIndex reads the index.json of an OCI layout.
func layoutIndex(t testing.TB, dir string) manifestDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	return parseManifest(t, data)
}

// layoutBlob reads a blob of an OCI layout and checks it against its digest.
func layoutBlob(t testing.TB, dir, dgst string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256Digest(data); got != dgst {
		t.Fatalf("layout blob %s has digest %s", dgst, got)
	}
	return data
}

// checkLayoutImage verifies that an OCI layout holds the image byte for byte.
func checkLayoutImage(t testing.TB, dir string, img image) {
	t.Helper()
	if !bytes.Equal(layoutBlob(t, dir, img.Manifest.Digest()), img.Manifest.Data) {
		t.Fatalf("layout %s: manifest %s differs", dir, img.Manifest.Digest())
	}
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		if !bytes.Equal(layoutBlob(t, dir, b.Digest()), b.Data) {
			t.Fatalf("layout %s: blob %s differs", dir, b.Digest())
		}
	}
}

// registryClient is a regClient for any registry on loopback over plain HTTP.
func registryClient(t testing.TB, addr string) *regClient {
	t.Helper()
	return newClient(t, &server{Addr: addr})
}

// gzipBytes compresses data.
func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
