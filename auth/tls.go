package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
)

// Client certificate policies.
const (
	ClientAuthOptional = "optional"
	ClientAuthRequire  = "require"
)

// TLSOptions configure HTTPS.
type TLSOptions struct {
	// CertFile and KeyFile are the server's PEM certificate (chain) and key.
	CertFile, KeyFile string
	// ClientCA is a PEM bundle of the CAs that sign client certificates;
	// empty for no client certificates.
	ClientCA string
	// ClientAuth is ClientAuthOptional (the default) or ClientAuthRequire.
	ClientAuth string
	// Log receives reload failures.
	Log *slog.Logger
}

// CertReloader serves a certificate and key pair from files and reloads
// them when they change, checked at each handshake (a stat of each file),
// so a renewed certificate is used from the next connection on. A pair
// that fails to load keeps the previous one in service.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	stamps [2]fileStamp
}

// NewCertReloader loads the pair now, reporting a bad one.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reloadLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CertReloader) reloadLocked() error {
	s1, err1 := statFile(c.certFile)
	s2, err2 := statFile(c.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if c.cert != nil && s1 == c.stamps[0] && s2 == c.stamps[1] {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.cert, c.stamps = &cert, [2]fileStamp{s1, s2}
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reloadLocked(); err != nil {
		// Often a renewal caught between writing the certificate and the
		// key: the next handshake will see both.
		c.log.Warn("tls: keeping the previous certificate", "err", err)
	}
	return c.cert, nil
}

// NewTLSConfig returns the server's TLS configuration.
func NewTLSConfig(opts TLSOptions) (*tls.Config, error) {
	rl, err := NewCertReloader(opts.CertFile, opts.KeyFile, opts.Log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: rl.GetCertificate,
	}
	if opts.ClientCA != "" {
		pem, err := os.ReadFile(opts.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client CA: no certificates in %s", opts.ClientCA)
		}
		cfg.ClientCAs = pool
		switch opts.ClientAuth {
		case ClientAuthOptional, "":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		case ClientAuthRequire:
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		default:
			return nil, fmt.Errorf("tls client auth %q: want %s or %s", opts.ClientAuth, ClientAuthOptional, ClientAuthRequire)
		}
	}
	return cfg, nil
}

// certIdentity maps a verified client certificate to the user named by its
// subject's common name.
func certIdentity(r *http.Request) (Identity, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if ValidUserName(cn) != nil {
		return Identity{}, false
	}
	return Identity{Name: cn, Method: MethodTLS}, true
}
