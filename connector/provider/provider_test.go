package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthhq/berth/connector/provider"
	"github.com/berthhq/berth/connector/provider/providertest"
	"github.com/berthhq/berth/internal/testenv"
)

func newEnv(t *testing.T, rawURL string, s provider.Settings, now func() time.Time) provider.Env {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if now == nil {
		now = time.Now
	}
	return provider.Env{Registry: "test", URL: u, Settings: s, HTTPClient: &http.Client{Timeout: 10 * time.Second}, Now: now}
}

func open(t *testing.T, name string, env provider.Env) provider.Provider {
	t.Helper()
	f, ok := provider.Lookup(name)
	if !ok {
		t.Fatalf("provider %s not found", name)
	}
	if f.Check != nil {
		if err := f.Check(env); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	p, err := f.New(t.Context(), env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestECRTokenRenewedBeforeExpiry(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	srv := providertest.NewECR("AKIDTEST")
	defer srv.Close()
	clk := testenv.NewClock(time.Now())
	env := newEnv(t, "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", provider.Settings{ECR: provider.ECRConfig{
		AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Endpoint: srv.URL(),
	}}, clk.Now)
	p := open(t, "ecr", env)
	c1, err := p.Credentials(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Valid(c1.Username, c1.Password) {
		t.Fatalf("credentials %q:%q are not the token the ECR API issued", c1.Username, c1.Password)
	}
	// 12 hours of life: kept for 11h44m, renewed in the last quarter hour.
	clk.Advance(11*time.Hour + 40*time.Minute)
	c2, _ := p.Credentials(t.Context(), nil)
	if c2 != c1 || srv.Requests() != 1 {
		t.Fatalf("token renewed too early: %d requests", srv.Requests())
	}
	clk.Advance(10 * time.Minute)
	c3, err := p.Credentials(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c3 == c1 || srv.Requests() != 2 {
		t.Fatalf("token not renewed 10 minutes before it expires: %d requests", srv.Requests())
	}
	// A refusal asks again at once.
	_ = p.(provider.Invalidator).Invalidate()
	if _, err := p.Credentials(t.Context(), nil); err != nil || srv.Requests() != 3 {
		t.Fatalf("after Invalidate: %v, %d requests", err, srv.Requests())
	}
}

func TestECRBadAnswers(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv := providertest.NewECR("AKIDTEST")
	defer srv.Close()
	for _, tc := range []struct {
		name  string
		key   string
		setup func()
		want  string
	}{
		{"wrong key", "AKIDWRONG", func() {}, "UnrecognizedClientException"},
		{"malformed token", "AKIDTEST", func() { srv.SetAnswers(true, false) }, "not base64"},
		{"expired token", "AKIDTEST", func() { srv.SetAnswers(false, true) }, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			env := newEnv(t, "http://127.0.0.1:1", provider.Settings{ECR: provider.ECRConfig{
				Region: "eu-west-1", AccessKeyID: tc.key, SecretAccessKey: "s", Endpoint: srv.URL(),
			}}, nil)
			_, err := open(t, "ecr", env).Credentials(t.Context(), nil)
			if !errors.Is(err, provider.ErrNoCredentials) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrNoCredentials with %q", err, tc.want)
			}
		})
	}
}

func TestECRHost(t *testing.T) {
	for _, tc := range []struct {
		host, account, region string
		ok                    bool
	}{
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012", "eu-west-1", true},
		{"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "123456789012", "us-east-1", true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "123456789012", "cn-north-1", true},
		{"12345.dkr.ecr.eu-west-1.amazonaws.com", "", "", false},
		{"ghcr.io", "", "", false},
	} {
		a, r, ok := provider.ECRHost(tc.host)
		if a != tc.account || r != tc.region || ok != tc.ok {
			t.Errorf("ECRHost(%q) = %q, %q, %v", tc.host, a, r, ok)
		}
	}
}

func TestACRExchange(t *testing.T) {
	entra := providertest.NewEntra("tenant-1", "app-1", "s3cret")
	defer entra.Close()
	gw, err := providertest.NewGateway("http://127.0.0.1:1", providertest.ACR)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.CheckAAD = entra.Valid
	gw.RefreshLifetime = time.Hour
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, entra.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := testenv.NewClock(time.Now())
	env := newEnv(t, gw.URL(), provider.Settings{ACR: provider.ACRConfig{
		TenantID: "tenant-1", ClientID: "app-1", ClientSecret: "s3cret", AuthorityHost: entra.URL(),
	}}, clk.Now)
	env.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: entra.TLSConfig()}, Timeout: 10 * time.Second}
	p := open(t, "acr", env)
	c, err := p.Credentials(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.IdentityToken == "" || gw.Count("exchange") != 1 || entra.Requests() != 1 {
		t.Fatalf("credentials %+v after %d exchanges, %d Entra requests", c, gw.Count("exchange"), entra.Requests())
	}
	// The refresh token's exp (1h) decides: renewed in its last quarter.
	clk.Advance(40 * time.Minute)
	if c2, _ := p.Credentials(t.Context(), nil); c2 != c || gw.Count("exchange") != 1 {
		t.Fatal("refresh token renewed too early")
	}
	clk.Advance(10 * time.Minute)
	if c3, err := p.Credentials(t.Context(), nil); err != nil || c3 == c || gw.Count("exchange") != 2 {
		t.Fatalf("refresh token not renewed before it expires: %v, %d exchanges", err, gw.Count("exchange"))
	}

	bad := env
	bad.Settings.ACR.ClientSecret = "wrong"
	_, err = open(t, "acr", bad).Credentials(t.Context(), nil)
	if !errors.Is(err, provider.ErrNoCredentials) || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestGARServiceAccount(t *testing.T) {
	g, err := providertest.NewGoogle("puller@berth-test.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	key := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(key, g.KeyJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, "https://europe-docker.pkg.dev", provider.Settings{GAR: provider.GARConfig{CredentialsFile: key}}, nil)
	p := open(t, "gar", env)
	c, err := p.Credentials(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Valid(c.Username, c.Password) {
		t.Fatalf("credentials %q:%q are not the issued access token", c.Username, c.Password)
	}
	if _, err := p.Credentials(t.Context(), nil); err != nil || g.Requests() != 1 {
		t.Fatalf("token not kept for its lifetime: %v, %d requests", err, g.Requests())
	}
	// A token that lives less than the source's margin is fetched again.
	g.Lifetime = time.Second
	p = open(t, "gar", env)
	_, _ = p.Credentials(t.Context(), nil)
	_, _ = p.Credentials(t.Context(), nil)
	if g.Requests() != 3 {
		t.Fatalf("short-lived tokens: %d requests, want 3", g.Requests())
	}
}

func TestPasswordFileReread(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := open(t, "generic", newEnv(t, "https://r.example", provider.Settings{Username: "u", PasswordFile: f}, nil))
	if c, _ := p.Credentials(t.Context(), nil); c.Password != "one" {
		t.Fatalf("password %q", c.Password)
	}
	if err := os.WriteFile(f, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Credentials(t.Context(), nil); c.Password != "second" {
		t.Fatalf("password %q after the file changed", c.Password)
	}
}

func TestDockerHubSearchAndRateLimit(t *testing.T) {
	hub := providertest.NewHubSearch(
		providertest.HubRepo{Name: "alpine", Description: "A minimal image", Stars: 11000, Official: true},
		providertest.HubRepo{Name: "bitnami/alpine-ish", Description: "not really"},
	)
	defer hub.Close()
	p := open(t, "dockerhub", newEnv(t, "https://registry-1.docker.io", provider.Settings{DockerHub: provider.DockerHubConfig{SearchURL: hub.URL()}}, nil))
	rs, err := p.(provider.Searcher).Search(t.Context(), "alpine", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != "library/alpine" || !rs[0].Official || rs[0].Stars != 11000 || rs[1].Name != "bitnami/alpine-ish" {
		t.Fatalf("results %+v", rs)
	}
	if q := hub.Queries(); len(q) != 1 || q[0].Get("query") != "alpine" || q[0].Get("page_size") != "10" {
		t.Fatalf("queries %v", q)
	}
	if _, ok := p.(provider.Lister); ok {
		t.Error("dockerhub lists a catalog; Docker Hub has none")
	}
	resp := &http.Response{Header: http.Header{"Ratelimit-Limit": {"100;w=21600"}, "Ratelimit-Remaining": {"76;w=21600"}}}
	p.(provider.Observer).Observe(resp)
	rl := p.(provider.Hinter).Hints().RateLimit
	if rl == nil || rl.Limit != 100 || rl.Remaining != 76 || rl.Window != 6*time.Hour {
		t.Fatalf("rate limit %+v", rl)
	}
}

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"100;w=21600", 100, 6 * time.Hour, true},
		{" 76 ; w=21600 ", 76, 6 * time.Hour, true},
		{"200", 200, 0, true},
		{"", 0, 0, false},
		{"x;w=1", 0, 0, false},
		{"-1;w=1", 0, 0, false},
		{"5;w=x", 0, 0, false},
	} {
		n, w, ok := provider.ParseRateLimit(tc.in)
		if n != tc.n || w != tc.window || ok != tc.ok {
			t.Errorf("ParseRateLimit(%q) = %d, %v, %v", tc.in, n, w, ok)
		}
	}
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"100;w=21600", "0", ";;;", "9999999999999;w=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, w, ok := provider.ParseRateLimit(s)
		if ok && (n < 0 || w < 0) {
			t.Fatalf("%q: %d %v", s, n, w)
		}
	})
}

func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		name, provider string
		url            string
		s              provider.Settings
		want           string
	}{
		{"ecr without region off AWS", "ecr", "http://127.0.0.1:5000", provider.Settings{}, "ecr.region: required"},
		{"ecr with a password", "ecr", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", provider.Settings{Username: "AWS", Password: "x"}, "do not apply"},
		{"ecr half keys", "ecr", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", provider.Settings{ECR: provider.ECRConfig{AccessKeyID: "A"}}, "accessKeyID with secretAccessKey"},
		{"acr without identity", "acr", "https://x.azurecr.io", provider.Settings{}, "service principal needs"},
		{"acr http authority", "acr", "https://x.azurecr.io", provider.Settings{ACR: provider.ACRConfig{ManagedIdentity: true, AuthorityHost: "http://login"}}, "want https"},
		{"gitlab token without user", "gitlab", "https://registry.gitlab.com", provider.Settings{Password: "glpat-x"}, "gitlab+deploy-token-N"},
		{"ghcr token without user", "ghcr", "https://ghcr.io", provider.Settings{Password: "ghp_x"}, "GitHub user"},
		{"helper and password", "generic", "https://r.example", provider.Settings{CredentialHelper: "ecr-login", Username: "u", Password: "p"}, "not both"},
		{"helper with prefix", "generic", "https://r.example", provider.Settings{CredentialHelper: "docker-credential-x"}, "without docker-credential-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := provider.Lookup(tc.provider)
			err := f.Check(newEnv(t, tc.url, tc.s, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}

type custom struct{}

func (custom) Credentials(context.Context, []string) (provider.Credentials, error) {
	return provider.Credentials{RegistryToken: "t"}, nil
}

// registrations makes the names TestRegister registers unique across -count runs.
var registrations atomic.Int64

func TestRegister(t *testing.T) {
	name := fmt.Sprintf("custom-test-%d", registrations.Add(1))
	provider.Register(name, provider.Factory{New: func(context.Context, provider.Env) (provider.Provider, error) { return custom{}, nil }})
	if _, ok := provider.Lookup(name); !ok {
		t.Fatal("a registered provider is not found")
	}
	found := false
	for _, n := range provider.Names() {
		found = found || n == name
	}
	if !found {
		t.Error("Names lacks the registered provider")
	}
	for _, bad := range []string{name, "Bad", ""} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad)
				}
			}()
			provider.Register(bad, provider.Factory{New: func(context.Context, provider.Env) (provider.Provider, error) { return custom{}, nil }})
		}()
	}
}
