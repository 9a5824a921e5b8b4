package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TLSConfig returns the TLS configuration for a registry host ("host[:port]"): the system
// roots plus the host's certificates directory (see LoadCertsDir), and no verification for
// an insecure registry.
func (c *Config) TLSConfig(host string) (*tls.Config, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.IsInsecure(ctx, host) {
		cfg.InsecureSkipVerify = true //nolint:gosec // the user listed the registry as insecure
	}
	if err := LoadCertsDir(cfg, HostCertsDir(c.certsDir, host)); err != nil {
		return nil, err
	}
	return cfg, nil
}

// HostCertsDir is the directory of one host's certificates: certsDir/host[:port]. A host
// that would escape certsDir gets a directory that does not exist.
func HostCertsDir(certsDir, host string) string {
	if host == "" || host == "." || host == ".." || strings.ContainsAny(host, `/\`) {
		return filepath.Join(certsDir, ".invalid-host")
	}
	return filepath.Join(certsDir, host)
}

// LoadCertsDir adds a certificates directory to cfg, as Docker reads /etc/docker/certs.d/HOST:
//   - every *.crt is a CA certificate (PEM) trusted in addition to the system roots;
//   - every *.cert is a client certificate whose key is the *.key of the same base name,
//     and every *.key needs its *.cert: either half alone is an error.
//
// A missing directory adds nothing.
func LoadCertsDir(cfg *tls.Config, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("certificates directory: %w", err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		p := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, ".crt"):
			if cfg.RootCAs == nil {
				pool, err := x509.SystemCertPool()
				if err != nil || pool == nil {
					pool = x509.NewCertPool()
				}
				cfg.RootCAs = pool
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("CA certificate: %w", err)
			}
			if !cfg.RootCAs.AppendCertsFromPEM(data) {
				return fmt.Errorf("CA certificate %s: no PEM certificate in it", p)
			}
		case strings.HasSuffix(name, ".cert"):
			key := strings.TrimSuffix(name, ".cert") + ".key"
			if !names[key] {
				return fmt.Errorf("client certificate %s has no key %s", p, filepath.Join(dir, key))
			}
			pair, err := tls.LoadX509KeyPair(p, filepath.Join(dir, key))
			if err != nil {
				return fmt.Errorf("client certificate %s: %w", p, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		case strings.HasSuffix(name, ".key"):
			cert := strings.TrimSuffix(name, ".key") + ".cert"
			if !names[cert] {
				return fmt.Errorf("client key %s has no certificate %s", p, filepath.Join(dir, cert))
			}
		}
	}
	return nil
}
