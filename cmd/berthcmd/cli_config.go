package berthcmd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/service"
)

// defaultClientConfigHelp names the default client configuration file in flag help.
const defaultClientConfigHelp = "$XDG_CONFIG_HOME/berth/client.yaml if it exists"

// clientConfig is what berth reads of a client configuration file: a Docker daemon.json
// (or the same keys in YAML).
type clientConfig struct {
	RegistryMirrors                []string
	InsecureRegistries             []string
	AllowNondistributableArtifacts []string
	// Ignored are the file's keys berth does not use (a daemon.json's log-driver,
	// storage-driver, ...), sorted.
	Ignored []string
	// Warnings are keys berth reads no more, with what to do instead.
	Warnings []string
}

// defaultClientConfigPath returns where the client configuration is read from when
// --client-config is not given.
func defaultClientConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "berth", "client.yaml")
}

// clientConfigKeys are the daemon.json keys berth uses, and where each goes.
var clientConfigKeys = []string{"registry-mirrors", "insecure-registries", "allow-nondistributable-artifacts"}

// maxClientConfig bounds the configuration file read.
const maxClientConfig = 1 << 20

// loadClientConfig reads a client configuration file: JSON (a daemon.json as it is) or
// YAML. Keys berth does not use are ignored and listed in Ignored; a known key with a value
// of the wrong type is an error. A missing file is an error only when it was named
// explicitly.
func loadClientConfig(path string, explicit bool) (clientConfig, error) {
	var c clientConfig
	if path == "" {
		return c, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, usageError{fmt.Errorf("client configuration: %w", err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxClientConfig+1))
	if err != nil {
		return c, usageError{fmt.Errorf("client configuration %s: %w", path, err)}
	}
	if len(data) > maxClientConfig {
		return c, usageError{fmt.Errorf("client configuration %s: larger than %d bytes", path, maxClientConfig)}
	}
	bad := func(err error) error {
		return usageError{fmt.Errorf("client configuration %s: %s", path, strings.Join(strings.Fields(err.Error()), " "))}
	}
	lists := map[string]*[]string{
		"registry-mirrors":                 &c.RegistryMirrors,
		"insecure-registries":              &c.InsecureRegistries,
		"allow-nondistributable-artifacts": &c.AllowNondistributableArtifacts,
	}
	var keys []string
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		// JSON, decoded as JSON: a daemon.json may be indented with tabs, which YAML refuses.
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &doc); err != nil {
			return c, bad(err)
		}
		for k, raw := range doc {
			keys = append(keys, k)
			if dst, ok := lists[k]; ok {
				if err := json.Unmarshal(raw, dst); err != nil {
					return c, bad(fmt.Errorf("%s: want a list of strings (%v)", k, err))
				}
			}
		}
	} else {
		var doc map[string]yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return c, bad(err)
		}
		for k, node := range doc {
			keys = append(keys, k)
			if dst, ok := lists[k]; ok {
				if err := node.Decode(dst); err != nil {
					return c, bad(fmt.Errorf("%s: want a list of strings (%v)", k, err))
				}
			}
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case slices.Contains(clientConfigKeys, k):
		case k == "certs-dir":
			c.Warnings = append(c.Warnings, "certs-dir is not read from the file (the daemon has no such key): use --certs-dir")
		default:
			c.Ignored = append(c.Ignored, k)
		}
	}
	return c, nil
}

// resolveMap is the --resolve table: "host:port" to "addr:port".
type resolveMap map[string]string

// parseResolve parses --resolve values, HOST:PORT:ADDR (ADDR an IP, [v6] allowed).
func parseResolve(values []string) (resolveMap, error) {
	m := resolveMap{}
	for _, v := range values {
		host, rest, ok1 := strings.Cut(v, ":")
		port, addr, ok2 := strings.Cut(rest, ":")
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if !ok1 || !ok2 || host == "" || port == "" || net.ParseIP(addr) == nil {
			return nil, usageError{fmt.Errorf("--resolve %q: want HOST:PORT:ADDR with ADDR an IP address", v)}
		}
		m[strings.ToLower(net.JoinHostPort(host, port))] = net.JoinHostPort(addr, port)
	}
	return m, nil
}

// lookupIP answers host names of the table before the system resolver, so insecure CIDRs
// match what connections really reach.
func (m resolveMap) lookupIP(ctx context.Context, host string) ([]net.IP, error) {
	if ips, ok := m.lookup(host); ok {
		return ips, nil
	}
	return net.DefaultResolver.LookupIP(ctx, "ip", host)
}

// lookup returns the address the table gives host (on any port).
func (m resolveMap) lookup(host string) ([]net.IP, bool) {
	for hp, addr := range m {
		if h, _, _ := net.SplitHostPort(hp); strings.EqualFold(h, host) {
			a, _, _ := net.SplitHostPort(addr)
			return []net.IP{net.ParseIP(a)}, true
		}
	}
	return nil, false
}

// serviceOptions merges the configuration file and the flags: flags add mirrors, insecure
// registries and registries allowed foreign layers to the file's. What the file has that
// berth does not use is named in a debug line; keys it reads no more, in a warning.
func (f *clientFlags) serviceOptions() (service.Options, resolveMap, error) {
	path, explicit := f.configFile, f.configFile != ""
	if !explicit {
		path = defaultClientConfigPath()
	}
	cfg, err := loadClientConfig(path, explicit)
	if err != nil {
		return service.Options{}, nil, err
	}
	if len(cfg.Ignored) > 0 {
		f.debugf("client configuration %s: ignoring keys berth does not use: %s", path, strings.Join(cfg.Ignored, ", "))
	}
	for _, w := range cfg.Warnings {
		f.warnf("client configuration %s: %s", path, w)
	}
	res, err := parseResolve(f.resolve)
	if err != nil {
		return service.Options{}, nil, err
	}
	opts := service.Options{
		Mirrors:                        append(append([]string(nil), cfg.RegistryMirrors...), f.mirrors...),
		InsecureRegistries:             append(append([]string(nil), cfg.InsecureRegistries...), f.insecure...),
		AllowNondistributableArtifacts: append(append([]string(nil), cfg.AllowNondistributableArtifacts...), f.allowForeign...),
		AllInsecure:                    f.insecureAll,
		CertsDir:                       f.certsDir,
		LookupIP:                       res.lookupIP,
	}
	f.debugf("registry service: mirrors %v, insecure registries %v (all: %v), foreign layers allowed to %v, certificates %s",
		opts.Mirrors, opts.InsecureRegistries, opts.AllInsecure, opts.AllowNondistributableArtifacts,
		cmp.Or(opts.CertsDir, service.DefaultCertsDirFor(os.Getenv)))
	return opts, res, nil
}

// credentialStore returns the Docker config file credentials are read from and written to.
func (f *clientFlags) credentialStore() *credentials.ConfigFile {
	if f.dockerConfig != "" {
		return credentials.NewConfigFile(filepath.Join(f.dockerConfig, credentials.ConfigFileName))
	}
	return credentials.NewConfigFile("")
}

// newClient builds the registry client the flags describe.
func (f *clientFlags) newClient(extra ...client.Option) (*client.Client, error) {
	opts, res, err := f.serviceOptions()
	if err != nil {
		return nil, err
	}
	svc, err := service.New(opts)
	if err != nil {
		return nil, usageError{err}
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Blobs stream from one connection to another: large buffers mean fewer system calls
	// and hash updates per byte.
	base.ReadBufferSize, base.WriteBufferSize = 256<<10, 256<<10
	if len(res) > 0 {
		dialer := &net.Dialer{}
		base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := res[strings.ToLower(addr)]; ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		}
	}
	all := append([]client.Option{
		client.WithService(svc),
		client.WithBaseTransport(base),
		client.WithCredentials(f.credentialStore().Get),
		client.WithUserAgent(userAgent()),
	}, extra...)
	return client.New(all...)
}
