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
		{in: "https://mirror.example.com/dockerhub", want: "https://mirror.example.com/dockerhub"},
		{in: "https://Mirror.Example.com/a/b/", want: "https://mirror.example.com/a/b"},
		{in: "https://mirror.example.com/a//b", err: "segments"},
		{in: "https://mirror.example.com/a/../b", err: "segments"},
		{in: "mirror.example.com:5000", err: "scheme"},
		{in: "https://-bad.example", err: "invalid host"},
		{in: "https://mirror.example.com:99999", err: "invalid port"},
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

func TestValidateIndexName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want, err string }{
		{in: "docker.io", want: "docker.io"},
		{in: "index.docker.io", want: "docker.io"},
		{in: "registry.example:5000", want: "registry.example:5000"},
		{in: "-registry.example", err: "hyphen"},
		{in: "registry.example-", err: "hyphen"},
		{in: "-", err: "hyphen"},
	} {
		got, err := ValidateIndexName(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ValidateIndexName(%q) = %q, %v; want an error about %s", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ValidateIndexName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// The configuration validates its registry lists with it.
	for _, bad := range []string{"-x.example", "x.example-:5000", "bad_host!:5000", "x.example:70000"} {
		if _, err := NewConfig(Options{InsecureRegistries: []string{bad}}); err == nil {
			t.Errorf("insecure registry %q accepted", bad)
		}
		if _, err := NewConfig(Options{AllowNondistributableArtifacts: []string{bad}}); err == nil {
			t.Errorf("allow-nondistributable-artifacts registry %q accepted", bad)
		}
	}
	cfg, err := NewConfig(Options{InsecureRegistries: []string{"index.docker.io"}})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.IsInsecure(context.Background(), "docker.io") {
		t.Error("index.docker.io was not normalised to docker.io")
	}
}

func TestResolveRepository(t *testing.T) {
	t.Parallel()
	svc, err := New(Options{Mirrors: []string{"https://mirror.example/hub"}, InsecureRegistries: []string{"lan.example:5000"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		in, name, path, index string
		official, secure      bool
		indexOfficial         bool
		mirrors               int
	}{
		{in: "ubuntu", name: "docker.io/library/ubuntu", path: "library/ubuntu", index: "docker.io", official: true, secure: true, indexOfficial: true, mirrors: 1},
		{in: "library/ubuntu:22.04", name: "docker.io/library/ubuntu", path: "library/ubuntu", index: "docker.io", official: true, secure: true, indexOfficial: true, mirrors: 1},
		{in: "index.docker.io/user/app", name: "docker.io/user/app", path: "user/app", index: "docker.io", secure: true, indexOfficial: true, mirrors: 1},
		{in: "lan.example:5000/team/app@sha256:" + strings.Repeat("a", 64), name: "lan.example:5000/team/app", path: "team/app", index: "lan.example:5000"},
		{in: "ghcr.io/org/app", name: "ghcr.io/org/app", path: "org/app", index: "ghcr.io", secure: true},
		{in: "localhost:5000/x", name: "localhost:5000/x", path: "x", index: "localhost:5000"},
	} {
		info, err := svc.ResolveRepository(ctx, tt.in)
		if err != nil {
			t.Errorf("ResolveRepository(%q): %v", tt.in, err)
			continue
		}
		if info.Name != tt.name || info.Path != tt.path || info.Official != tt.official || info.Index.Name != tt.index ||
			info.Index.Secure != tt.secure || info.Index.Official != tt.indexOfficial || len(info.Index.Mirrors) != tt.mirrors {
			t.Errorf("ResolveRepository(%q) = %+v, index %+v", tt.in, info, info.Index)
		}
	}
	for _, bad := range []string{"https://x.example/app", "Upper/Case", "-bad.example/app", ""} {
		if info, err := svc.ResolveRepository(ctx, bad); err == nil {
			t.Errorf("ResolveRepository(%q) = %+v, want an error", bad, info)
		}
	}
	for _, bad := range []string{"-x", "x.example/path", "http://x.example", ""} {
		if info, err := svc.ResolveIndexInfo(ctx, bad); err == nil {
			t.Errorf("ResolveIndexInfo(%q) = %+v, want an error", bad, info)
		}
	}
	if info, err := svc.ResolveIndexInfo(ctx, "index.docker.io"); err != nil || !info.Official || info.Name != "docker.io" || info.Mirrors[0] != "https://mirror.example/hub" {
		t.Errorf("ResolveIndexInfo(index.docker.io) = %+v, %v", info, err)
	}
}

func TestLookupEndpoints(t *testing.T) {
	t.Parallel()
	certsDir := t.TempDir()
	ca := testpki.NewCA(t, "lookup CA")
	testpki.Write(t, filepath.Join(certsDir, "tls.example:5000"), "ca.crt", ca.CertPEM)
	svc, err := New(Options{
		CertsDir:                       certsDir,
		Mirrors:                        []string{"https://mirror.example/dockerhub/", "http://127.0.0.1:5001"},
		InsecureRegistries:             []string{"lan.example:5000"},
		AllowNondistributableArtifacts: []string{"lan.example:5000", "docker.io", "192.0.2.0/24"},
		LookupIP: func(_ context.Context, host string) ([]net.IP, error) {
			if host == "inrange.example" {
				return []net.IP{net.ParseIP("192.0.2.9")}, nil
			}
			return nil, errors.New("no such host")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	str := func(eps []Endpoint) string {
		var s []string
		for _, e := range eps {
			x := e.String()
			for _, f := range []struct {
				name string
				on   bool
			}{{" mirror", e.Mirror}, {" insecure", e.Insecure}, {" official", e.Official}, {" ana", e.AllowNondistributableArtifacts}} {
				if f.on {
					x += f.name
				}
			}
			switch {
			case e.TLSConfig == nil:
				x += " notls"
			case e.TLSConfig.InsecureSkipVerify:
				x += " unverified"
			case e.TLSConfig.RootCAs != nil:
				x += " ca"
			}
			s = append(s, x)
		}
		return strings.Join(s, ", ")
	}
	must := func(eps []Endpoint, err error) []Endpoint {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return eps
	}
	for _, tt := range []struct {
		name string
		got  []Endpoint
		want string
	}{
		{"hub pull", must(svc.LookupPullEndpoints(ctx, "docker.io")),
			"https://mirror.example/dockerhub mirror, http://127.0.0.1:5001 mirror insecure notls, https://registry-1.docker.io official ana"},
		{"hub push (legacy name)", must(svc.LookupPushEndpoints(ctx, "index.docker.io")), "https://registry-1.docker.io official ana"},
		{"insecure, allowed by name", must(svc.LookupPushEndpoints(ctx, "lan.example:5000")),
			"https://lan.example:5000 insecure ana unverified, http://lan.example:5000 insecure ana notls"},
		{"allowed by range", must(svc.LookupPushEndpoints(ctx, "inrange.example")), "https://inrange.example ana"},
		{"certs directory", must(svc.LookupPullEndpoints(ctx, "tls.example:5000")), "https://tls.example:5000 ca"},
		{"not allowed", must(svc.LookupPushEndpoints(ctx, "other.example")), "https://other.example"},
	} {
		if got := str(tt.got); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	if _, err := svc.LookupPullEndpoints(ctx, "-bad"); err == nil {
		t.Error("LookupPullEndpoints accepted an invalid index name")
	}
	testpki.Write(t, filepath.Join(certsDir, "broken.example"), "junk.crt", []byte("not pem"))
	if _, err := svc.LookupPushEndpoints(ctx, "broken.example"); err == nil || !strings.Contains(err.Error(), "broken.example") {
		t.Errorf("a broken certificates directory: %v", err)
	}
}

func TestAllInsecure(t *testing.T) {
	t.Parallel()
	cfg, err := NewConfig(Options{AllInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for host, want := range map[string]bool{"registry.example": true, "10.0.0.1:5000": true, "docker.io": false, "registry-1.docker.io": false} {
		if got := cfg.IsInsecure(ctx, host); got != want {
			t.Errorf("AllInsecure: IsInsecure(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestDefaultCertsDirFor(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tt := range []struct {
		env  func(string) string
		want string
	}{
		{env(), DefaultCertsDir},
		{env("XDG_CONFIG_HOME", "/home/u/.cfg"), DefaultCertsDir}, // not rootless
		{env("ROOTLESSKIT_STATE_DIR", "/run/user/1000/dockerd-rootless", "XDG_CONFIG_HOME", "/home/u/.cfg"), "/home/u/.cfg/docker/certs.d"},
		{env("ROOTLESSKIT_STATE_DIR", "/run/x", "HOME", "/home/u"), "/home/u/.config/docker/certs.d"},
		{env("ROOTLESSKIT_STATE_DIR", "/run/x"), DefaultCertsDir},
	} {
		if got := DefaultCertsDirFor(tt.env); got != tt.want {
			t.Errorf("DefaultCertsDirFor = %s, want %s", got, tt.want)
		}
	}
}

func FuzzValidateMirror(f *testing.F) {
	for _, s := range []string{"https://m.example", "http://m.example:5000/a/b/", "https://[::1]:5000/x", "m.example", "https://u:p@m/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ValidateMirror(s)
		if err != nil {
			return
		}
		again, err := ValidateMirror(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("ValidateMirror(%q) = %s, which validates to %v, %v", s, u, again, err)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/") {
			t.Fatalf("ValidateMirror(%q) = %s: not normalised", s, u)
		}
	})
}
