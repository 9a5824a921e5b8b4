package berthcmd

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthhq/berth/client/service"
)

// TestServicePlumbing checks that flags and the configuration file reach the registry
// service: insecure registries by name and CIDR (host names resolved through --resolve),
// mirrors, and the certificates directory, flags adding to the file.
func TestServicePlumbing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlConf := file("client.yaml", "registry-mirrors: [\"https://mirror.example\"]\ninsecure-registries: [\"10.1.0.0/16\", \"file.example:5000\"]\ncerts-dir: /from/file\n")
	empty := file("empty.yaml", "")
	jsonConf := file("daemon.json", `{"insecure-registries": ["json.example"], "registry-mirrors": ["http://m2.example/"]}`)
	ctx := context.Background()

	type check struct {
		host     string
		insecure bool
	}
	for _, tc := range []struct {
		name     string
		flags    clientFlags
		checks   []check
		mirrors  []string
		certsDir string
	}{
		{
			name:     "defaults",
			checks:   []check{{"127.0.0.1:5000", true}, {"localhost:5000", true}, {"[::1]:5000", true}, {"registry.example", false}, {"10.1.2.3:5000", false}},
			certsDir: service.DefaultCertsDir,
		},
		{
			name:     "host flag",
			flags:    clientFlags{insecure: []string{"registry.example:5000"}},
			checks:   []check{{"registry.example:5000", true}, {"registry.example:5001", false}, {"other.example:5000", false}},
			certsDir: service.DefaultCertsDir,
		},
		{
			name:     "host flag without port matches every port",
			flags:    clientFlags{insecure: []string{"registry.example"}},
			checks:   []check{{"registry.example:5000", true}, {"registry.example", true}, {"registry.examplex:1", false}},
			certsDir: service.DefaultCertsDir,
		},
		{
			name:  "CIDR flag, names resolved through --resolve",
			flags: clientFlags{insecure: []string{"192.0.2.0/24"}, resolve: []string{"in.example:443:192.0.2.7", "out.example:443:198.51.100.7"}},
			checks: []check{{"192.0.2.200:5000", true}, {"192.0.3.1", false}, {"in.example:443", true}, {"out.example:443", false},
				{"127.0.0.2:80", true}},
			certsDir: service.DefaultCertsDir,
		},
		{
			name:     "YAML file",
			flags:    clientFlags{configFile: yamlConf},
			checks:   []check{{"10.1.200.1:443", true}, {"10.2.0.1:443", false}, {"file.example:5000", true}, {"file.example:5001", false}},
			mirrors:  []string{"https://mirror.example"},
			certsDir: "/from/file",
		},
		{
			name:     "flags add to the file, --certs-dir replaces its",
			flags:    clientFlags{configFile: yamlConf, insecure: []string{"flag.example"}, mirrors: []string{"https://flag-mirror.example"}, certsDir: "/from/flag"},
			checks:   []check{{"10.1.0.1", true}, {"flag.example:1", true}},
			mirrors:  []string{"https://mirror.example", "https://flag-mirror.example"},
			certsDir: "/from/flag",
		},
		{
			name:     "daemon.json keys",
			flags:    clientFlags{configFile: jsonConf},
			checks:   []check{{"json.example:5000", true}},
			mirrors:  []string{"http://m2.example"},
			certsDir: service.DefaultCertsDir,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.flags.configFile == "" {
				tc.flags.configFile = empty // not the machine's default file
			}
			opts, res, err := tc.flags.serviceOptions()
			if err != nil {
				t.Fatal(err)
			}
			// Names come from --resolve; nothing reaches the system resolver.
			opts.LookupIP = func(_ context.Context, host string) ([]net.IP, error) {
				if ips, ok := res.lookup(host); ok {
					return ips, nil
				}
				return nil, &net.DNSError{Err: "not in --resolve", Name: host, IsNotFound: true}
			}
			cfg, err := service.NewConfig(opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				if got := cfg.IsInsecure(ctx, c.host); got != c.insecure {
					t.Errorf("IsInsecure(%s) = %v, want %v", c.host, got, c.insecure)
				}
			}
			if got := cfg.Mirrors(); !slices.Equal(got, tc.mirrors) && (len(got) > 0 || len(tc.mirrors) > 0) {
				t.Errorf("mirrors %v, want %v", got, tc.mirrors)
			}
			if got := cfg.CertsDir(); got != tc.certsDir {
				t.Errorf("certs dir %q, want %q", got, tc.certsDir)
			}
		})
	}
}

// TestInsecureFallback checks the endpoints the flags give: HTTPS only for a secure
// registry, HTTPS then HTTP for an insecure one, mirrors first for Docker Hub pulls only.
func TestInsecureFallback(t *testing.T) {
	t.Parallel()
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := clientFlags{insecure: []string{"plain.example:5000"}, mirrors: []string{"http://mirror.example:5000"}, configFile: empty}
	opts, _, err := f.serviceOptions()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := service.NewConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	urls := func(eps []service.Endpoint) []string {
		var out []string
		for _, e := range eps {
			out = append(out, e.String())
		}
		return out
	}
	for _, tc := range []struct {
		got, want []string
	}{
		{urls(cfg.PushEndpoints(ctx, "plain.example:5000")), []string{"https://plain.example:5000", "http://plain.example:5000"}},
		{urls(cfg.PushEndpoints(ctx, "secure.example:5000")), []string{"https://secure.example:5000"}},
		{urls(cfg.PullEndpoints(ctx, "docker.io")), []string{"http://mirror.example:5000", "https://registry-1.docker.io"}},
		{urls(cfg.PullEndpoints(ctx, "secure.example:5000")), []string{"https://secure.example:5000"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("endpoints %v, want %v", tc.got, tc.want)
		}
	}
}

func TestLoadClientConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path string
		explicit   bool
		wantErr    string
	}{
		{"missing default", filepath.Join(dir, "none.yaml"), false, ""},
		{"missing named", filepath.Join(dir, "none.yaml"), true, "no such file"},
		{"empty", write("empty.yaml", ""), true, ""},
		{"unknown key", write("typo.yaml", "insecure-registry: [x]\n"), true, `unknown key "insecure-registry" (known: registry-mirrors, insecure-registries, certs-dir)`},
		{"wrong type", write("type.yaml", "certs-dir: [a, b]\n"), true, "certs-dir"},
		{"not YAML", write("bad.yaml", "{{{"), true, "client configuration"},
	} {
		_, err := loadClientConfig(tc.path, tc.explicit)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.wantErr)
		case err != nil && exitCode(err) != exitUsage:
			t.Errorf("%s: exit code %d, want %d", tc.name, exitCode(err), exitUsage)
		}
	}
}

func TestParseResolve(t *testing.T) {
	t.Parallel()
	m, err := parseResolve([]string{"Reg.Example:443:127.0.0.1", "v6.example:5000:[::1]"})
	if err != nil {
		t.Fatal(err)
	}
	if m["reg.example:443"] != "127.0.0.1:443" || m["v6.example:5000"] != "[::1]:5000" {
		t.Errorf("resolve map %v", m)
	}
	ips, err := m.lookupIP(context.Background(), "reg.example")
	if err != nil || len(ips) != 1 || !ips[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("lookupIP(reg.example) = %v, %v", ips, err)
	}
	for _, bad := range []string{"host", "host:1", "host:1:notanip", ":1:127.0.0.1", "host::127.0.0.1"} {
		if _, err := parseResolve([]string{bad}); err == nil || exitCode(err) != exitUsage {
			t.Errorf("--resolve %q: error %v, want a usage error", bad, err)
		}
	}
}
