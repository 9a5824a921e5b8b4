package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// registryHost is the name the TLS and insecure-registry tests reach registries by: not
// loopback by name, so only the configuration decides whether TLS is verified (every
// loopback address is an insecure registry). --resolve points it at 127.0.0.1.
const registryHost = "registry.test"

// hostOf returns registryHost with the port of a loopback address, and the --resolve flag
// that leads there.
func hostOf(t testing.TB, addr string) (host, resolve string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	host = net.JoinHostPort(registryHost, port)
	return host, "--resolve=" + host + ":127.0.0.1"
}

// TestCLICertsDir reaches the CNCF registry over TLS with a self-signed CA: refused until
// the CA is in the certificates directory (--certs-dir), or the registry is named
// insecure (by flag or in the default client configuration file); then with mutual TLS, refused
// until client.cert and client.key are there too.
func TestCLICertsDir(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	cert, key := pki.issue(t, "server", registryHost, true)
	dist := startDistribution(t, distOptions{cert: cert, key: key})
	host, resolve := hostOf(t, dist.Addr)
	c := newCLI(t)
	ix := newIndex(t, "linux/amd64")
	src := filepath.Join(t.TempDir(), "src")
	ix.writeLayout(t, src, "v1")
	ref := host + "/e2e/tls:v1"

	certs := t.TempDir()
	r := c.fails(cliExitFailure, []string{host, "certificate", "ca.crt"}, "push", src, ref, resolve, "--certs-dir", certs)
	if strings.Contains(r.stderr, "http://") {
		t.Errorf("a registry not named insecure was tried over plain HTTP: %s", r.stderr)
	}

	// Insecure by name: TLS without verification.
	c.ok("push", src, ref, resolve, "--certs-dir", certs, "--insecure-registry", host)

	// The CA in place: verified TLS, through the flag and through a configuration file.
	copyTestFile(t, pki.CA, filepath.Join(certs, host, "ca.crt"))
	c.ok("push", src, ref, resolve, "--certs-dir", certs)
	c.ok("pull", ref, resolve, "--certs-dir", certs, "-o", filepath.Join(t.TempDir(), "out.tar"))
	// The certificates directory is a flag, not a key of the configuration file (the
	// daemon has none): one there is named in a warning, and the default is used.
	conf := writeFile(t, t.TempDir(), "client.yaml", []byte("certs-dir: "+certs+"\n"))
	c.fails(cliExitFailure, []string{"use --certs-dir", "certificate"}, "inspect", ref, resolve, "--client-config", conf)
	// The default configuration file is read.
	writeFile(t, filepath.Join(c.home, ".config", "berth"), "client.yaml", []byte("insecure-registries: ["+host+"]\n"))
	c.ok("tags", host+"/e2e/tls", resolve)

	// Mutual TLS: the registry wants a certificate signed by the CA.
	mcert, mkey := pki.issue(t, "mserver", registryHost, true)
	mtls := startDistribution(t, distOptions{cert: mcert, key: mkey, clientCA: pki.CA})
	mhost, mresolve := hostOf(t, mtls.Addr)
	mref := mhost + "/e2e/mtls:v1"
	copyTestFile(t, pki.CA, filepath.Join(certs, mhost, "ca.crt"))
	c.fails(cliExitFailure, []string{mhost, "client.cert"}, "push", src, mref, mresolve, "--certs-dir", certs)
	ccert, ckey := pki.issue(t, "client", "", false)
	copyTestFile(t, ccert, filepath.Join(certs, mhost, "client.cert"))
	// Half a pair is a configuration error, named.
	c.fails(cliExitFailure, []string{"client.cert", "has no key"}, "push", src, mref, mresolve, "--certs-dir", certs)
	copyTestFile(t, ckey, filepath.Join(certs, mhost, "client.key"))
	c.ok("push", src, mref, mresolve, "--certs-dir", certs)
	if got := lines(c.ok("tags", mhost+"/e2e/mtls", mresolve, "--certs-dir", certs)); len(got) != 1 || got[0] != "v1" {
		t.Errorf("tags over mutual TLS = %v", got)
	}
}

// TestCLIInsecureAndMirrors checks the plumbing of --insecure-registry (host and CIDR, from
// flags and from a configuration file) with its fall back to plain HTTP, and of
// --registry-mirror for Docker Hub names.
func TestCLIInsecureAndMirrors(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	reg := newClient(t, srv)
	c := newCLI(t)
	img := newImage(t, "linux", "amd64", 1)
	reg.pushImage("e2e/plain", "v1", img)
	host, resolve := hostOf(t, srv.Addr)
	ref := host + "/e2e/plain:v1"

	// Not insecure: HTTPS only, which a plain-HTTP registry does not speak.
	r := c.fails(cliExitFailure, []string{ref, "--insecure-registry"}, "inspect", ref, resolve)
	if strings.Contains(r.stderr, "http://"+host) {
		t.Errorf("plain HTTP tried for a registry not named insecure: %s", r.stderr)
	}
	for _, flags := range [][]string{
		{"--insecure-registry", host},
		{"--insecure-registry", registryHost}, // without the port: every port
		{"--insecure-registry", "127.0.0.0/8"},
		{"--client-config", writeFile(t, t.TempDir(), "c.yaml", []byte("insecure-registries: ["+host+"]\n"))},
		{"--client-config", writeFile(t, t.TempDir(), "c.json", []byte(`{"insecure-registries": ["127.0.0.1/32"]}`))},
	} {
		args := append([]string{"inspect", "--raw", ref, resolve}, flags...)
		if got := c.ok(args...); got != string(img.Manifest.Data) {
			t.Errorf("inspect with %v: got %s", flags, got)
		}
	}
	c.fails(cliExitFailure, nil, "inspect", ref, resolve, "--insecure-registry", "other.test")
	// Keys berth does not use are ignored (a daemon.json has many); a known key of the wrong
	// type is a usage error.
	c.ok("inspect", ref, resolve, "--client-config", writeFile(t, t.TempDir(), "extra.yaml", []byte("insecure-registries: ["+host+"]\ntypo: 1\n")))
	c.fails(cliExitUsage, []string{"insecure-registries"}, "inspect", ref, resolve,
		"--client-config", writeFile(t, t.TempDir(), "bad.yaml", []byte("insecure-registries: {a: b}\n")))
	c.fails(cliExitUsage, []string{"--resolve"}, "inspect", ref, "--resolve", "nonsense")

	// Docker Hub names go to the mirror, which serves library/...; Docker Hub itself is
	// never reached because the mirror answers.
	reg.pushImage("library/mirrored", "v1", img)
	mirror := "http://" + srv.Addr
	for _, flags := range [][]string{
		{"--registry-mirror", mirror},
		{"--client-config", writeFile(t, t.TempDir(), "m.yaml", []byte("registry-mirrors: [\""+mirror+"\"]\n"))},
	} {
		args := append([]string{"inspect", "--raw", "mirrored:v1"}, flags...)
		if got := c.ok(args...); got != string(img.Manifest.Data) {
			t.Errorf("inspect mirrored:v1 with %v: got %s", flags, got)
		}
	}
	out := filepath.Join(t.TempDir(), "m.tar")
	c.ok("pull", "docker.io/library/mirrored:v1", "--registry-mirror", mirror, "-o", out)
	c.fails(cliExitUsage, []string{"mirror"}, "inspect", "mirrored:v1", "--registry-mirror", "ftp://x")
}
