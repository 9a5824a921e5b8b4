package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthhq/berth/client/internal/testpki"
)

func TestValidateMirror(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want, err string
	}{
		{in: "https://mirror.example.com", want: "https://mirror.example.com"},
		{in: "https://Mirror.Example.com:5000/", want: "https://mirror.example.com:5000"},
		{in: "http://127.0.0.1:5000", want: "http://127.0.0.1:5000"},
		{in: "mirror.example.com", err: "scheme"},
		{in: "ftp://mirror.example.com", err: "scheme"},
		{in: "https://mirror.example.com/v2", err: "path"},
		{in: "https://mirror.example.com?x=1", err: "query"},
		{in: "https://mirror.example.com/?", err: "query"},
		{in: "https://user:pw@mirror.example.com", err: "user info"},
		{in: "https://mirror.example.com#frag", err: "fragment"},
		{in: "https://", err: "no host"},
	} {
		u, err := ValidateMirror(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ValidateMirror(%q) = %v, %v; want an error about %s", tt.in, u, err, tt.err)
		case tt.err == "" && (err != nil || u.String() != tt.want):
			t.Errorf("ValidateMirror(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

func TestInsecureRegistries(t *testing.T) {
	t.Parallel()
	lookups := map[string][]net.IP{"intranet.example": {net.ParseIP("10.1.2.3")}, "public.example": {net.ParseIP("192.0.2.7")}}
	var mu sync.Mutex
	var looked []string
	cfg, err := NewConfig(Options{
		InsecureRegistries: []string{"10.0.0.0/8", "plain.example:5000", "anyport.example", "2001:db8::/32"},
		LookupIP: func(_ context.Context, host string) ([]net.IP, error) {
			mu.Lock()
			looked = append(looked, host)
			mu.Unlock()
			if ips, ok := lookups[host]; ok {
				return ips, nil
			}
			return nil, errors.New("no such host")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for host, want := range map[string]bool{
		"127.0.0.1:5000":          true, // loopback, always
		"127.8.9.10":              true,
		"[::1]:5000":              true,
		"localhost:5000":          true,
		"10.20.30.40:443":         true, // CIDR
		"11.0.0.1":                false,
		"[2001:db8::1]:5000":      true,
		"plain.example:5000":      true, // host:port
		"plain.example:5001":      false,
		"plain.example":           false,
		"anyport.example:1234":    true, // host without port: every port
		"intranet.example:5000":   true, // resolved into a CIDR
		"public.example":          false,
		"unresolvable.example:80": false,
		"docker.io":               false,
	} {
		if got := cfg.IsInsecure(ctx, host); got != want {
			t.Errorf("IsInsecure(%q) = %v, want %v", host, got, want)
		}
	}

	// Without CIDRs beyond loopback nothing is resolved.
	plain, err := NewConfig(Options{LookupIP: func(context.Context, string) ([]net.IP, error) {
		t.Error("resolved a name with no CIDR configured")
		return nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.IsInsecure(ctx, "registry.example") || !plain.IsInsecure(ctx, "127.0.0.1:5000") {
		t.Error("default configuration: wrong insecure answers")
	}

	for _, bad := range []string{"http://x:5000", "x/y", "", "10.0.0.0/33x", ":5000"} {
		if _, err := NewConfig(Options{InsecureRegistries: []string{bad}}); err == nil {
			t.Errorf("insecure registry %q accepted", bad)
		}
	}
	// Every problem is reported at once.
	_, err = NewConfig(Options{Mirrors: []string{"nope"}, InsecureRegistries: []string{"a/b"}})
	if err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "a/b") {
		t.Errorf("joined error: %v", err)
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	cfg, err := NewConfig(Options{
		Mirrors:            []string{"https://mirror-a.example", "http://127.0.0.1:5001/"},
		InsecureRegistries: []string{"plain.example:5000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	str := func(eps []Endpoint) string {
		var s []string
		for _, e := range eps {
			x := e.String()
			if e.Mirror {
				x += " mirror"
			}
			if e.Insecure {
				x += " insecure"
			}
			s = append(s, x)
		}
		return strings.Join(s, ", ")
	}
	for _, tt := range []struct {
		name string
		got  []Endpoint
		want string
	}{
		{"hub pull: mirrors first", cfg.PullEndpoints(ctx, "docker.io"),
			"https://mirror-a.example mirror, http://127.0.0.1:5001 mirror insecure, https://registry-1.docker.io"},
		{"hub push: no mirrors", cfg.PushEndpoints(ctx, "docker.io"), "https://registry-1.docker.io"},
		{"other registry: no mirrors, HTTPS only", cfg.PullEndpoints(ctx, "ghcr.io"), "https://ghcr.io"},
		{"insecure: HTTPS then HTTP", cfg.PullEndpoints(ctx, "plain.example:5000"),
			"https://plain.example:5000 insecure, http://plain.example:5000 insecure"},
		{"loopback: HTTPS then HTTP", cfg.PushEndpoints(ctx, "127.0.0.1:5000"),
			"https://127.0.0.1:5000 insecure, http://127.0.0.1:5000 insecure"},
		{"search on hub", cfg.SearchEndpoints(ctx, "docker.io"), "https://index.docker.io"},
	} {
		if got := str(tt.got); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestServiceReloadIsAtomic(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Mirrors: []string{"https://a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	old := s.Config()
	if err := s.Reload(Options{Mirrors: []string{"bad"}}); err == nil {
		t.Fatal("invalid reload accepted")
	}
	if s.Config() != old {
		t.Fatal("an invalid reload replaced the configuration")
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				m := s.Config().Mirrors()
				if len(m) != 1 || (m[0] != "https://a.example" && m[0] != "https://b.example") {
					t.Errorf("torn configuration: %v", m)
					return
				}
			}
		}()
	}
	for j := 0; j < 200; j++ {
		mirror := "https://a.example"
		if j%2 == 0 {
			mirror = "https://b.example"
		}
		if err := s.Reload(Options{Mirrors: []string{mirror}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if old.Mirrors()[0] != "https://a.example" {
		t.Error("a Config changed after it was replaced")
	}
}

func TestCertsDir(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	clientCA := testpki.NewCA(t, "client CA")
	certsDir := t.TempDir()

	serverCert, serverKey := ca.Server("registry.test")
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: poolOf(t, clientCA.CertPEM)}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	host := "registry.test:" + port
	hostDir := filepath.Join(certsDir, host)

	cfg, err := NewConfig(Options{CertsDir: certsDir})
	if err != nil {
		t.Fatal(err)
	}
	get := func() (string, error) {
		tc, err := cfg.TLSConfig(host)
		if err != nil {
			return "", err
		}
		tr := &http.Transport{TLSClientConfig: tc, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + host + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return b.String(), nil
	}

	// Without the CA the server is not trusted.
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("reached the server without its CA: %v", err)
	}
	testpki.Write(t, hostDir, "ca.crt", ca.CertPEM)
	if body, err := get(); err != nil || body != "no client certificate\n" {
		t.Fatalf("with ca.crt: %q, %v", body, err)
	}
	// A lone half of a client pair is an error.
	cert, key := clientCA.Client("berth-test-client")
	testpki.Write(t, hostDir, "client.cert", cert)
	if _, err := cfg.TLSConfig(host); err == nil || !strings.Contains(err.Error(), "client.key") {
		t.Fatalf("lone client.cert: %v", err)
	}
	testpki.Write(t, hostDir, "client.key", key)
	if body, err := get(); err != nil || body != "berth-test-client" {
		t.Fatalf("with the client pair: %q, %v", body, err)
	}
	if err := os.Remove(filepath.Join(hostDir, "client.cert")); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.TLSConfig(host); err == nil || !strings.Contains(err.Error(), "client.cert") {
		t.Fatalf("lone client.key: %v", err)
	}
	// A .crt that holds no certificate is an error, not silently ignored.
	testpki.Write(t, hostDir, "client.cert", cert)
	testpki.Write(t, hostDir, "junk.crt", []byte("not pem"))
	if _, err := cfg.TLSConfig(host); err == nil {
		t.Fatal("junk.crt accepted")
	}
	// A host that would leave the directory gets none.
	if d := HostCertsDir(certsDir, "../etc"); strings.Contains(d, "..") || !strings.HasPrefix(d, certsDir) {
		t.Errorf("HostCertsDir escapes: %s", d)
	}
	// Insecure registries skip verification.
	if tc, err := cfg.TLSConfig("127.0.0.1:1"); err != nil || !tc.InsecureSkipVerify {
		t.Errorf("loopback TLS config: %+v, %v", tc, err)
	}
}

func poolOf(t *testing.T, pemCerts []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemCerts) {
		t.Fatal("bad PEM")
	}
	return p
}
