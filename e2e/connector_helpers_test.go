package e2e

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/connector/provider/providertest"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

// connBerth is a berth with connectors served by this process: the registry behind a
// connector.Connector, as `berth serve` wires them, over the filesystem driver and SQLite.
type connBerth struct {
	t    testing.TB
	Addr string
	conn *connector.Connector
	meta metadata.Store
	log  *syncBuffer
}

// startConnectorBerth serves a registry with the given registries on a loopback port until
// the test ends.
func startConnectorBerth(t testing.TB, cfg connector.Config) *connBerth {
	t.Helper()
	dir := t.TempDir()
	drv, err := filesystem.New(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := &connBerth{t: t, meta: meta, log: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	blobs := storage.New(drv)
	content := gc.Guard(meta, blobs)
	b.conn, err = connector.New(cfg, content, blobs, connector.Options{Logger: log})
	if err != nil {
		meta.Close()
		t.Fatalf("connector.New: %v", err)
	}
	reg := registry.New(blobs, content, registry.Options{Logger: log, Resolver: b.conn})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = ln.Addr().String()
	srv := &http.Server{Handler: registry.Handler(reg, registry.HandlerOptions{Logger: log}), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = b.conn.Close()
		_ = meta.Close()
		if t.Failed() {
			t.Logf("berth log (%s):\n%s", b.Addr, tail(b.log.String(), 64<<10))
		}
	})
	return b
}

// URL is the base URL of the server.
func (b *connBerth) URL() string { return "http://" + b.Addr }

// client returns an anonymous regClient for the server.
func (b *connBerth) client(t testing.TB) *regClient {
	base, _ := url.Parse(b.URL())
	return &regClient{t: t, base: base, hc: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}}}
}

// authClient returns a regClient for base that answers Basic and Bearer challenges with
// user's credentials.
func authClient(t testing.TB, base, user, pass string) *regClient {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := &authTransport{user: user, pass: pass, next: &http.Transport{Proxy: nil}, tokens: map[string]string{}}
	return &regClient{t: t, base: u, hc: &http.Client{Timeout: 2 * time.Minute, Transport: tr}}
}

// countingProxy is a reverse proxy in front of an upstream registry that counts the requests
// it passes on, by "METHOD kind ref" (kind: manifests, blobs or other). Stop makes the
// upstream unreachable for berth.
type countingProxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	counts map[string]int
}

func startCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil}
	rp.ErrorLog = nil
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[providertest.CountKey(r)]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// URL is where berth reaches the upstream.
func (p *countingProxy) URL() string { return p.srv.URL }

// Stop closes the proxy: the upstream is unreachable from then on.
func (p *countingProxy) Stop() { p.srv.Close() }

func (p *countingProxy) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[key]
}

func (p *countingProxy) reset() {
	p.mu.Lock()
	p.counts = map[string]int{}
	p.mu.Unlock()
}
