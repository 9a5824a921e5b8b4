package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

// gcBerth is a registry served by this process with garbage collection, wired as berth serve
// wires them: the filesystem driver, SQLite, and the metadata store guarded by gc.Guard. The
// tests run collections themselves, with the clock and options they need.
type gcBerth struct {
	t     testing.TB
	URL   string
	raw   metadata.Store      // the SQLite store
	meta  metadata.ReadWriter // what the registry uses
	blobs *storage.Store
	root  string // the filesystem driver's root
	// failures are the registry's logged request failures (sent as 500).
	failures *failureLog
}

func startGCBerth(t testing.TB) *gcBerth {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "storage")
	drv, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sqlite.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := storage.New(drv)
	b := &gcBerth{t: t, raw: raw, meta: gc.Guard(raw, blobs), blobs: blobs, root: root, failures: &failureLog{}}
	log := slog.New(b.failures)
	srv := httptest.NewServer(registry.Handler(registry.New(blobs, b.meta, registry.Options{Logger: log}), registry.HandlerOptions{Logger: log}))
	b.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		if err := raw.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// client returns a regClient (failing the test on unexpected answers) for this server.
func (b *gcBerth) client(t testing.TB) *regClient {
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &regClient{t: t, base: u, hc: &http.Client{Timeout: time.Minute}}
}

// collect runs one collection and fails the test on error.
func (b *gcBerth) collect(t testing.TB, opts gc.Options) *gc.Report {
	t.Helper()
	rep, err := gc.Run(context.Background(), b.raw, b.blobs, opts)
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	return rep
}

// stored lists the digests of the blobs in storage.
func (b *gcBerth) stored(t testing.TB) map[digest.Digest]bool {
	t.Helper()
	out := map[digest.Digest]bool{}
	err := b.blobs.WalkBlobs(context.Background(), func(bi storage.BlobInfo) error {
		out[bi.Digest] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// state returns what garbage collection sees of repo, or nil if it does not exist.
func (b *gcBerth) state(t testing.TB, repo string) *metadata.RepositoryState {
	t.Helper()
	var st *metadata.RepositoryState
	_, err := b.raw.CollectRepository(context.Background(), repo, func(rs *metadata.RepositoryState) (*metadata.Collection, error) {
		st = rs
		return nil, nil
	}, false)
	if err != nil && !strings.Contains(err.Error(), metadata.ErrRepositoryNotFound.Error()) {
		t.Fatal(err)
	}
	return st
}

// untaggedPolicy makes untagged manifests eligible after an hour everywhere.
func untaggedPolicy(t testing.TB) *gc.Policy {
	t.Helper()
	p, err := gc.Retention{{Repositories: []string{"**"}, UntaggedAfter: time.Hour}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// failureLog is a slog handler keeping the registry's "request failed" records: the errors
// behind 500 answers.
type failureLog struct {
	mu   sync.Mutex
	errs []string
}

func (f *failureLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (f *failureLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request failed" {
		return nil // the access log line of the same request
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	f.mu.Lock()
	f.errs = append(f.errs, b.String())
	f.mu.Unlock()
	return nil
}

func (f *failureLog) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f *failureLog) WithGroup(string) slog.Handler      { return f }

// take returns the failures logged since the last call.
func (f *failureLog) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.errs
	f.errs = nil
	return out
}

// collected reports whether a logged failure is a push refused because garbage collection
// removed what it needed (metadata.ErrCollected), which clients retry.
func collected(msg string) bool { return strings.Contains(msg, metadata.ErrCollected.Error()) }
