package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/connector/provider/providertest"
)

// distClient is an anonymous client of a distribution registry.
func distClient(t testing.TB, d *distServer) *regClient {
	return authClient(t, "http://"+d.Addr, "", "")
}

// startConfigured runs `berth serve` with the config file text (in its own directory, so
// relative file names resolve beside it) and returns the server and a client.
func startConfigured(t testing.TB, dir, cfg string, extra ...string) (*server, *regClient) {
	t.Helper()
	path := writeFile(t, dir, "berth.yaml", []byte(cfg))
	b := startBerth(t, append([]string{"--config", path}, extra...)...)
	return b, newClient(t, b)
}

// health returns the connectors' health report.
func health(t testing.TB, c *regClient) []connector.Status {
	t.Helper()
	r := c.expect(c.request("GET", "/_berth/connectors", nil), http.StatusOK)
	var body struct {
		Connectors []connector.Status `json:"connectors"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("health: %v: %s", err, r.Body)
	}
	return body.Connectors
}

// statusOf returns the health of the named cache.
func statusOf(t testing.TB, c *regClient, name string) connector.Status {
	t.Helper()
	for _, s := range health(t, c) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no health report for %s", name)
	return connector.Status{}
}

// waitStatus polls the health report until cond holds for the named cache (background work
// reports its progress there), failing after a while.
func waitStatus(t testing.TB, c *regClient, name string, what string, cond func(connector.Status) bool) connector.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := statusOf(t, c, name)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(s)
			t.Fatalf("%s: %s did not happen: %s", name, what, b)
		}
		<-tick.C
	}
}

// startGateway fronts dist with a providertest gateway that authenticates requests as mode
// says, closed with the test.
func startGateway(t *testing.T, dist *distServer, mode providertest.Mode) *providertest.Gateway {
	t.Helper()
	gw, err := providertest.NewGateway("http://"+dist.Addr, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw
}

// wireErr decodes a registry error body.
func wireErr(t testing.TB, body []byte) (code, msg string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not a registry error: %s", body)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

// TestProviderECR pulls through a cache whose upstream takes ECR's tokens: berth gets one from
// GetAuthorizationToken (the ECR API's JSON protocol, signed with the configured keys), uses
// it as Basic AWS:TOKEN, keeps it, and gets a new one when the registry stops taking it.
// Wrong keys are a 502 naming the upstream and the reason, shown in health; cached content
// keeps serving.
func TestProviderECR(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	ecr := providertest.NewECR("AKIDE2E")
	t.Cleanup(ecr.Close)
	gw := startGateway(t, dist, providertest.Basic)
	gw.Check = ecr.Valid
	img, img2 := newImage(t, "linux", "amd64", 2), newImage(t, "linux", "amd64", 1)
	distClient(t, dist).pushImage("team/app", "v1", img)
	distClient(t, dist).pushImage("team/app", "v2", img2)

	dir := t.TempDir()
	writeFile(t, dir, "aws-secret", []byte("not-checked-by-the-stand-in\n"))
	b, c := startConfigured(t, dir, fmt.Sprintf(`registries:
  - name: ecr
    type: cache
    prefix: ecr/
    upstream:
      url: %s
      provider: ecr
      ecr:
        region: eu-west-1
        accessKeyID: AKIDE2E
        secretAccessKeyFile: aws-secret
        endpoint: %s
  - name: ecr-wrong
    type: cache
    prefix: wrong/
    upstream:
      url: %s
      provider: ecr
      ecr: {region: eu-west-1, accessKeyID: AKIDWRONG, secretAccessKey: x, endpoint: %s}
`, gw.URL(), ecr.URL(), gw.URL(), ecr.URL()))
	_ = b

	c.checkImage("ecr/team/app", img)
	if got := c.tags("ecr/team/app"); strings.Join(got, ",") != "v1,v2" {
		t.Errorf("tags %v", got)
	}
	if n := ecr.Requests(); n != 1 {
		t.Errorf("%d GetAuthorizationToken calls for one pull, want 1 (the token is kept)", n)
	}
	// The registry stops taking the token (revoked): berth gets a new one and the pull goes
	// through in the same request.
	ecr.Rotate("AKIDE2E")
	c.checkImage("ecr/team/app", img2)
	if n := ecr.Requests(); n != 2 {
		t.Errorf("%d GetAuthorizationToken calls after the token was revoked, want 2", n)
	}

	r := c.request("GET", "/v2/wrong/team/app/manifests/v1", nil, "Accept: "+mtOCIManifest)
	code, msg := wireErr(t, r.Body)
	if r.Status != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, gw.URL()) ||
		!strings.Contains(msg, "authenticate") || !strings.Contains(msg, "UnrecognizedClientException") {
		t.Fatalf("pull with wrong AWS keys: %d %s", r.Status, r.Body)
	}
	s := statusOf(t, c, "ecr-wrong")
	if s.Provider != "ecr" || !strings.Contains(s.LastError, "no credentials") || !strings.Contains(s.LastError, "GetAuthorizationToken") ||
		strings.Contains(s.LastError, "team/app") {
		t.Errorf("health of the cache with wrong keys: %+v", s)
	}
	// Cached content keeps serving when the credentials are gone.
	ecr.Rotate("AKIDROTATED")
	c.checkImage("ecr/team/app", img)
}

// TestProviderACR pulls through a cache of an ACR-like registry: berth signs in at the Entra
// stand-in (TLS, trusted through upstream.tls.caFile) as a service principal, exchanges the
// Entra token at /oauth2/exchange for a refresh token, and trades that at /oauth2/token for
// access tokens, as ACR's documented flow has it.
func TestProviderACR(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	entra := providertest.NewEntra("tenant-e2e", "app-e2e", "client-secret")
	t.Cleanup(entra.Close)
	gw := startGateway(t, dist, providertest.ACR)
	gw.CheckAAD = entra.Valid
	img := newImage(t, "linux", "arm64", 2)
	distClient(t, dist).pushImage("team/app", "v1", img)

	dir := t.TempDir()
	writeFile(t, dir, "entra-ca.pem", entra.CertPEM())
	writeFile(t, dir, "client-secret", []byte("client-secret\n"))
	_, c := startConfigured(t, dir, fmt.Sprintf(`registries:
  - name: acr
    type: cache
    prefix: acr/
    upstream:
      url: %s
      provider: acr
      tls: {caFile: entra-ca.pem}
      acr:
        tenantID: tenant-e2e
        clientID: app-e2e
        clientSecretFile: client-secret
        authorityHost: %s
`, gw.URL(), entra.URL()))
	c.checkImage("acr/team/app", img)
	if entra.Requests() != 1 || gw.Count("exchange") != 1 || gw.Count("token") < 1 {
		t.Errorf("Entra %d, exchange %d, token %d: want one sign-in and one exchange", entra.Requests(), gw.Count("exchange"), gw.Count("token"))
	}
	// Refresh tokens revoked: a new exchange, in the same request.
	gw.RevokeAll()
	img2 := newImage(t, "linux", "arm64", 1)
	distClient(t, dist).pushImage("team/app", "v2", img2)
	c.checkImage("acr/team/app", img2)
	if gw.Count("exchange") != 2 {
		t.Errorf("%d exchanges after the refresh token was revoked, want 2", gw.Count("exchange"))
	}
}

// TestProviderGAR pulls through a cache of an Artifact Registry-like registry: berth signs a
// JWT with the service account key, gets an access token from the Google token endpoint the
// key names, and authenticates as oauth2accesstoken in the registry's token flow.
func TestProviderGAR(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	google, err := providertest.NewGoogle("puller@berth-e2e.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(google.Close)
	gw := startGateway(t, dist, providertest.Token)
	gw.Check = google.Valid
	img := newImage(t, "linux", "amd64", 2)
	distClient(t, dist).pushImage("project/repo/app", "v1", img)

	dir := t.TempDir()
	writeFile(t, dir, "sa.json", google.KeyJSON())
	_, c := startConfigured(t, dir, fmt.Sprintf(`registries:
  - name: gar
    type: cache
    prefix: gar/
    upstream:
      url: %s
      provider: gar
      gar: {credentialsFile: sa.json}
`, gw.URL()))
	c.checkImage("gar/project/repo/app", img)
	if google.Requests() != 1 || gw.Count("token") < 1 || gw.Count("refused") < 1 {
		t.Errorf("Google %d, registry token %d, refused %d", google.Requests(), gw.Count("token"), gw.Count("refused"))
	}
}

// TestProviderTokenUsers pulls through GHCR- and GitLab-like caches that take a token as the
// password of a user in the token flow; the GitLab one reads it from a passwordFile, which is
// read again when it changes (a rotated deploy token).
func TestProviderTokenUsers(t *testing.T) {
	t.Parallel()
	dist := startDistribution(t, distOptions{})
	gw := startGateway(t, dist, providertest.Token)
	valid := map[string]string{"octocat": "ghp_e2e", "gitlab+deploy-token-7": "gldt-one"}
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	gw.Check = func(u, p string) bool {
		<-mu
		defer func() { mu <- struct{}{} }()
		return valid[u] == p
	}
	img, img2 := newImage(t, "linux", "amd64", 1), newImage(t, "linux", "amd64", 1)
	distClient(t, dist).pushImage("owner/app", "v1", img)
	distClient(t, dist).pushImage("group/project/app", "v1", img2)

	dir := t.TempDir()
	pw := writeFile(t, dir, "gitlab-token", []byte("gldt-one\n"))
	_, c := startConfigured(t, dir, fmt.Sprintf(`registries:
  - name: ghcr
    type: cache
    prefix: ghcr/
    upstream: {url: %s, provider: ghcr, username: octocat, password: ghp_e2e}
  - name: gitlab
    type: cache
    prefix: gitlab/
    upstream: {url: %s, provider: gitlab, username: gitlab+deploy-token-7, passwordFile: gitlab-token}
`, gw.URL(), gw.URL()))
	c.checkImage("ghcr/owner/app", img)
	c.checkImage("gitlab/group/project/app", img2)

	// The deploy token is rotated: the file changes, the old token stops working.
	<-mu
	valid["gitlab+deploy-token-7"] = "gldt-two"
	mu <- struct{}{}
	if err := os.WriteFile(pw, []byte("gldt-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.RevokeAll()
	img3 := newImage(t, "linux", "amd64", 1)
	distClient(t, dist).pushImage("group/project/app", "v2", img3)
	c.checkImage("gitlab/group/project/app", img3)
}

// TestCredentialHelperUpstream takes the upstream's credentials from a docker-credential-*
// helper (a script on PATH), as credentialHelper: ecr-login would.
func TestCredentialHelperUpstream(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	script := "#!/bin/sh\nread server\necho \"$1 $server\" >> " + calls + "\n" +
		"printf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}' \"$server\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-e2e-helper"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dist := startDistribution(t, distOptions{})
	gw := startGateway(t, dist, providertest.Basic)
	gw.Check = func(u, p string) bool { return u == "helper-user" && p == "helper-secret" }
	img := newImage(t, "linux", "amd64", 2)
	distClient(t, dist).pushImage("team/app", "v1", img)
	_, c := startConfigured(t, t.TempDir(), fmt.Sprintf(`registries:
  - name: helped
    type: cache
    prefix: helped/
    upstream: {url: %s, credentialHelper: e2e-helper}
`, gw.URL()))
	c.checkImage("helped/team/app", img)
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("the helper was not run: %v", err)
	}
	if got := strings.TrimSpace(string(b)); !strings.HasPrefix(got, "get "+gw.Host()) || strings.Count(got, "\n") != 0 {
		t.Errorf("helper calls %q, want one `get %s` (its answer is kept)", got, gw.Host())
	}
}

// TestUpstreamTLSClientCertificate pulls from a distribution that serves TLS with a
// certificate of its own CA and wants a client certificate: berth trusts the CA and presents
// its certificate (upstream.tls). A cache without the CA gets a 503 naming the upstream and
// the certificate problem, and caches nothing.
func TestUpstreamTLSClientCertificate(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	cert, key := pki.issue(t, "upstream", "localhost", true)
	clientCert, clientKey := pki.issue(t, "berth-client", "", false)
	dist := startDistribution(t, distOptions{cert: cert, key: key, clientCA: pki.CA})
	img := newImage(t, "linux", "amd64", 2)
	{
		tc := authClient(t, "https://"+dist.Addr, "", "")
		pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(pki.cert)
		tc.hc.Transport = &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
		tc.pushImage("team/app", "v1", img)
	}
	_, c := startConfigured(t, t.TempDir(), fmt.Sprintf(`registries:
  - name: secure
    type: cache
    prefix: secure/
    upstream:
      url: https://%s
      tls: {caFile: %s, certFile: %s, keyFile: %s}
  - name: untrusted
    type: cache
    prefix: untrusted/
    upstream: {url: "https://%s"}
`, dist.Addr, pki.CA, clientCert, clientKey, dist.Addr))
	c.checkImage("secure/team/app", img)
	r := c.request("GET", "/v2/untrusted/team/app/manifests/v1", nil, "Accept: "+mtOCIManifest)
	code, msg := wireErr(t, r.Body)
	if r.Status != http.StatusServiceUnavailable || code != "UNAVAILABLE" || !strings.Contains(msg, dist.Addr) || !strings.Contains(msg, "certificate") {
		t.Fatalf("pull from an upstream with an untrusted certificate: %d %s", r.Status, r.Body)
	}
	if s := statusOf(t, c, "untrusted"); s.State != "down" || !strings.Contains(s.LastError, "certificate") {
		t.Errorf("health of the untrusted upstream: %+v", s)
	}
	if c.manifestStatus("untrusted/team/app", img.Manifest.Digest()) == http.StatusOK {
		t.Error("content was served from an upstream whose certificate is not trusted")
	}
}
