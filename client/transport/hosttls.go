package transport

import (
	"crypto/tls"
	"net/http"
	"sync"
)

// HostTLS is the base RoundTripper: an *http.Transport per host, each a clone of one
// template with the TLS configuration that host needs (its own roots and client
// certificates, or no verification for an insecure registry).
type HostTLS struct {
	base   *http.Transport
	config func(host string) (*tls.Config, error)

	mu         sync.Mutex
	transports map[string]*http.Transport
}

// NewHostTLS returns a HostTLS cloning base (nil: http.DefaultTransport's settings) and
// asking config for the TLS configuration of each "host[:port]" on first use.
func NewHostTLS(base *http.Transport, config func(host string) (*tls.Config, error)) *HostTLS {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	return &HostTLS{base: base, config: config, transports: map[string]*http.Transport{}}
}

// RoundTrip sends req with the transport of its host.
func (h *HostTLS) RoundTrip(req *http.Request) (*http.Response, error) {
	t, err := h.transport(req.URL.Host)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.RoundTrip(req)
}

func (h *HostTLS) transport(host string) (*http.Transport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.transports[host]; ok {
		return t, nil
	}
	t := h.base.Clone()
	if h.config != nil {
		cfg, err := h.config(host)
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			t.TLSClientConfig = cfg
		}
	}
	h.transports[host] = t
	return t, nil
}

// CloseIdleConnections closes the idle connections of every host's transport.
func (h *HostTLS) CloseIdleConnections() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.transports {
		t.CloseIdleConnections()
	}
}
