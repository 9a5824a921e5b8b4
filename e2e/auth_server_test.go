package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Demonstration users of examples/htpasswd.
const (
	adminUser, adminPass   = "admin", "admin-secret"
	readerUser, readerPass = "reader", "reader-secret"
)

// authServer is a berth process with authentication on: GET /v2/ answers 401 when it is
// ready, and it may serve HTTPS. It is separate from server, whose readiness check wants 200.
type authServer struct {
	t       testing.TB
	Addr    string
	DataDir string
	Config  string // the config file
	tls     *tls.Config
	log     *syncBuffer

	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

// exampleConfig copies examples/NAME and examples/htpasswd into a new directory, so a test
// may change the users without touching the repository, and returns the config's path.
func exampleConfig(t testing.TB, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{name, "htpasswd"} {
		data, err := os.ReadFile(filepath.Join(suite.root, "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, f, data)
	}
	return filepath.Join(dir, name)
}

// startAuthBerth runs `berth serve --config cfg` on a free loopback port with its own data
// directory; tlsClient, when not nil, is how to reach it over HTTPS.
func startAuthBerth(t testing.TB, cfg string, tlsClient *tls.Config, extra ...string) *authServer {
	t.Helper()
	s := &authServer{t: t, Addr: freeAddr(t), DataDir: t.TempDir(), Config: cfg, tls: tlsClient, log: &syncBuffer{}}
	t.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
		}
		if t.Failed() {
			t.Logf("berth output (%s):\n%s", s.Addr, tail(s.log.String(), 64<<10))
		}
	})
	args := append([]string{"serve", "--config", cfg, "--addr", s.Addr, "--data", s.DataDir}, extra...)
	s.cmd = exec.Command(berthBinary(t), args...)
	fmt.Fprintf(s.log, "=== berth %v\n", args)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start berth: %v", err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	s.waitReady()
	return s
}

func (s *authServer) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// URL is the server's base URL.
func (s *authServer) URL() string {
	if s.tls != nil {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// httpClient reaches the server (trusting its CA over HTTPS) and never follows redirects.
func (s *authServer) httpClient() *http.Client {
	return &http.Client{
		Timeout:       2 * time.Minute,
		Transport:     &http.Transport{Proxy: nil, TLSClientConfig: s.tls},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// waitReady polls GET /v2/ until it answers 401 (or 200) with the API version header.
func (s *authServer) waitReady() {
	s.t.Helper()
	hc := s.httpClient()
	hc.Timeout = time.Second
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		resp, err := hc.Get(s.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusOK) &&
				resp.Header.Get("Docker-Distribution-API-Version") == apiVersion {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("berth on %s not ready after %v: last GET /v2/: %s", s.Addr, readyTimeout, last)
		}
		select {
		case <-s.exited:
			s.t.Fatalf("berth exited before it was ready: %v\n%s", s.exitErr, s.log.String())
		case <-tick.C:
		}
	}
}

// client returns a regClient for the server whose requests carry user's credentials the
// way registry clients send them (see authTransport); user "" is anonymous.
func (s *authServer) client(t testing.TB, user, pass string) *regClient {
	t.Helper()
	base, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	hc := s.httpClient()
	hc.Transport = &authTransport{user: user, pass: pass, next: hc.Transport, tokens: map[string]string{}}
	return &regClient{t: t, base: base, hc: hc}
}

// authTransport answers challenges as registry clients do: Basic credentials for a Basic
// challenge; for a Bearer challenge a token from the realm for the challenged scope (with
// Basic credentials when there is a user), then the request again.
type authTransport struct {
	user, pass string
	next       http.RoundTripper

	mu     sync.Mutex
	basic  bool
	tokens map[string]string // by challenged scope
	last   string
}

func (a *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a.mu.Lock()
	authz := a.last
	if a.basic {
		authz = basicAuthz(a.user, a.pass)
	}
	a.mu.Unlock()
	r := req.Clone(req.Context())
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	resp, err := a.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	switch {
	case ch.scheme == "basic" && a.user != "":
		a.mu.Lock()
		a.basic = true
		a.mu.Unlock()
		authz = basicAuthz(a.user, a.pass)
	case ch.scheme == "bearer":
		tok, err := a.token(ch)
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		authz = "Bearer " + tok
	default:
		return resp, nil
	}
	resp.Body.Close()
	r = req.Clone(req.Context())
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	r.Header.Set("Authorization", authz)
	a.mu.Lock()
	a.last = authz
	a.mu.Unlock()
	return a.next.RoundTrip(r)
}

func (a *authTransport) token(ch challenge) (string, error) {
	q := url.Values{"service": {ch.params["service"]}}
	if sc := ch.params["scope"]; sc != "" {
		q.Set("scope", sc)
	}
	req, err := http.NewRequest("GET", ch.params["realm"]+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	resp, err := (&http.Client{Transport: a.next}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request %s: %s %s", req.URL, resp.Status, body)
	}
	var tr struct{ Token string }
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		return "", fmt.Errorf("token response %s: %v", body, err)
	}
	return tr.Token, nil
}

func basicAuthz(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// challenge is a parsed WWW-Authenticate header (one challenge, quoted parameters).
type challenge struct {
	scheme string
	params map[string]string
	order  []string
}

var challengeParam = regexp.MustCompile(`([a-z]+)="((?:[^"\\]|\\.)*)"`)

func parseChallenge(h string) challenge {
	scheme, rest, _ := strings.Cut(h, " ")
	ch := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
	for _, m := range challengeParam.FindAllStringSubmatch(rest, -1) {
		ch.params[m[1]] = m[2]
		ch.order = append(ch.order, m[1])
	}
	return ch
}

// fetchToken asks the built-in token service for scopes with Basic credentials (none when
// user is empty) and returns the decoded response.
func fetchToken(t testing.TB, s *authServer, user, pass string, extra url.Values, scopes ...string) tokenReply {
	t.Helper()
	q := url.Values{"service": {"berth"}}
	for k, v := range extra {
		q[k] = v
	}
	if len(scopes) > 0 {
		q.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequest("GET", s.URL()+"/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := s.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token for %q %v: %s %s", user, scopes, resp.Status, body)
	}
	var tr tokenReply
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	return tr
}

type tokenReply struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token"`
}

// errorCode returns the code of the single error in a registry error body.
func errorCode(r response) string {
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(r.Body, &body) != nil || len(body.Errors) != 1 {
		return ""
	}
	return body.Errors[0].Code
}

// caPool returns a pool holding the PEM certificate at path.
func caPool(t testing.TB, pemData []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in PEM data")
	}
	return p
}
