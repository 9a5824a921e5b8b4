package berthcmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/service"
)

// defaultClientConfigHelp names the default client configuration file in flag help.
const defaultClientConfigHelp = "$XDG_CONFIG_HOME/berth/client.yaml if it exists"

// clientConfig is the client configuration file. Its keys are those of Docker's
// daemon.json for the same settings.
type clientConfig struct {
	RegistryMirrors    []string `yaml:"registry-mirrors"`
	InsecureRegistries []string `yaml:"insecure-registries"`
	CertsDir           string   `yaml:"certs-dir"`
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

// loadClientConfig reads a client configuration file strictly: unknown keys are errors.
// A missing file is an error only when it was named explicitly.
func loadClientConfig(path string, explicit bool) (clientConfig, error) {
	var c clientConfig
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, usageError{fmt.Errorf("client configuration: %w", err)}
	}
	var keys map[string]yaml.Node
	if err := yaml.Unmarshal(data, &keys); err != nil {
		return c, usageError{fmt.Errorf("client configuration %s: %v", path, err)}
	}
	var unknown []string
	for k := range keys {
		if !slices.Contains(clientConfigKeys, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return c, usageError{fmt.Errorf("client configuration %s: unknown key %s (known: %s)", path,
			strings.Join(unknown, ", "), strings.Join(clientConfigKeys, ", "))}
	}
	for _, k := range clientConfigKeys {
		node, ok := keys[k]
		if !ok {
			continue
		}
		var err error
		switch k {
		case "registry-mirrors":
			err = node.Decode(&c.RegistryMirrors)
		case "insecure-registries":
			err = node.Decode(&c.InsecureRegistries)
		case "certs-dir":
			err = node.Decode(&c.CertsDir)
		}
		if err != nil {
			return c, usageError{fmt.Errorf("client configuration %s: %s: %s", path, k, strings.Join(strings.Fields(err.Error()), " "))}
		}
	}
	return c, nil
}

// clientConfigKeys are the keys of the client configuration file.
var clientConfigKeys = []string{"registry-mirrors", "insecure-registries", "certs-dir"}

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

// serviceOptions merges the configuration file and the flags: flags add mirrors and
// insecure registries to the file's, and --certs-dir replaces its certs-dir.
func (f *clientFlags) serviceOptions() (service.Options, resolveMap, error) {
	path, explicit := f.configFile, f.configFile != ""
	if !explicit {
		path = defaultClientConfigPath()
	}
	cfg, err := loadClientConfig(path, explicit)
	if err != nil {
		return service.Options{}, nil, err
	}
	res, err := parseResolve(f.resolve)
	if err != nil {
		return service.Options{}, nil, err
	}
	opts := service.Options{
		Mirrors:            append(append([]string(nil), cfg.RegistryMirrors...), f.mirrors...),
		InsecureRegistries: append(append([]string(nil), cfg.InsecureRegistries...), f.insecure...),
		CertsDir:           cfg.CertsDir,
		LookupIP:           res.lookupIP,
	}
	if f.certsDir != "" {
		opts.CertsDir = f.certsDir
	}
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
		client.WithUserAgent("berth-cli/1"),
	}, extra...)
	return client.New(all...)
}
