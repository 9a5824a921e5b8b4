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
	yamlConf := file("client.yaml", "registry-mirrors: [\"https://mirror.example\"]\ninsecure-registries: [\"10.1.0.0/16\", \"file.example:5000\"]\n")
	empty := file("empty.yaml", "")
	// A real daemon.json: tab-indented, with keys berth does not use.
	jsonConf := file("daemon.json", "{\n\t\"log-driver\": \"journald\",\n\t\"insecure-registries\": [\"json.example\"],\n\t\"registry-mirrors\": [\"http://m2.example/hub/\"],\n\t\"log-opts\": {\"tag\": \"x\"},\n\t\"features\": {\"buildkit\": true}\n}\n")
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
			certsDir: service.DefaultCertsDir,
		},
		{
			name:     "flags add to the file, --certs-dir sets the directory",
			flags:    clientFlags{configFile: yamlConf, insecure: []string{"flag.example"}, mirrors: []string{"https://flag-mirror.example"}, certsDir: "/from/flag"},
			checks:   []check{{"10.1.0.1", true}, {"flag.example:1", true}},
			mirrors:  []string{"https://mirror.example", "https://flag-mirror.example"},
			certsDir: "/from/flag",
		},
		{
			name:     "daemon.json keys",
			flags:    clientFlags{configFile: jsonConf},
			checks:   []check{{"json.example:5000", true}},
			mirrors:  []string{"http://m2.example/hub"},
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
		ignored    []string
		warnings   int
	}{
		{name: "missing default", path: filepath.Join(dir, "none.yaml")},
		{name: "missing named", path: filepath.Join(dir, "none.yaml"), explicit: true, wantErr: "no such file"},
		{name: "empty", path: write("empty.yaml", ""), explicit: true},
		{name: "keys berth does not use", path: write("daemon.yaml", "insecure-registry: [x]\nlog-level: debug\nregistry-mirrors: []\n"), explicit: true,
			ignored: []string{"insecure-registry", "log-level"}},
		{name: "daemon.json", path: write("daemon.json", `{"storage-driver": "overlay2", "allow-nondistributable-artifacts": ["r.example"], "default-ulimits": {"nofile": {"Soft": 1}}}`), explicit: true,
			ignored: []string{"default-ulimits", "storage-driver"}},
		{name: "certs-dir is a flag now", path: write("certs.yaml", "certs-dir: /x\n"), explicit: true, warnings: 1},
		{name: "wrong type", path: write("type.yaml", "registry-mirrors: {a: b}\n"), explicit: true, wantErr: "registry-mirrors"},
		{name: "wrong type in JSON", path: write("type.json", `{"insecure-registries": "x"}`), explicit: true, wantErr: "insecure-registries"},
		{name: "not YAML", path: write("bad.yaml", "{{{"), explicit: true, wantErr: "client configuration"},
		{name: "not JSON", path: write("bad.json", "{\"a\": }"), explicit: true, wantErr: "client configuration"},
	} {
		cfg, err := loadClientConfig(tc.path, tc.explicit)
		if err == nil && (!slices.Equal(cfg.Ignored, tc.ignored) || len(cfg.Warnings) != tc.warnings) {
			t.Errorf("%s: ignored %v, warnings %v; want %v and %d warnings", tc.name, cfg.Ignored, cfg.Warnings, tc.ignored, tc.warnings)
		}
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
