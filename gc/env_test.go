package gc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/postgres"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

// Media types of the fixtures.
const (
	mtManifest  = "application/vnd.oci.image.manifest.v1+json"
	mtIndex     = "application/vnd.oci.image.index.v1+json"
	mtSignature = "application/vnd.example.signature.v1"
	mtSBOM      = "application/spdx+json"
)

// backends runs fn once per metadata store, each in a parallel subtest
// with a new, empty store.
func backends(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, b := range []struct {
		name string
		open func(t *testing.T) metadata.Store
	}{
		{"sqlite", func(t *testing.T) metadata.Store {
			s, err := sqlite.Open(filepath.Join(t.TempDir(), "metadata.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"postgres", func(t *testing.T) metadata.Store {
			s, err := postgres.Open(t.Context(), testenv.StartPostgres(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, b.open(t)))
		})
	}
}

// env is a registry without HTTP: storage on the filesystem, metadata
// guarded as the registry gets it, and a clock that tests move forward.
type env struct {
	t     *testing.T
	raw   metadata.Store      // the store itself
	meta  metadata.ReadWriter // Guard(raw)
	blobs *storage.Store
	root  string // of the filesystem driver
	clock *clock
}

func newEnv(t *testing.T, s metadata.Store) *env {
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	root := filepath.Join(t.TempDir(), "storage")
	drv, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	blobs := storage.New(drv)
	return &env{t: t, raw: s, meta: Guard(s, blobs), blobs: blobs, root: root, clock: &clock{}}
}

// clock is the wall clock moved forward by what tests advance it.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// grace is the grace period of the tests' collections.
const grace = time.Hour

// tombstoneTTL outlasts every clock advance of the tests, except those
// that test the purge: the stores stamp tombstones with the real time.
const tombstoneTTL = 100 * grace

// options returns collection options on the env's clock.
func (e *env) options(p *Policy) Options {
	return Options{Grace: grace, TombstoneTTL: tombstoneTTL, Policy: p, Now: e.clock.Now}
}

// backdate makes the stored bytes of d look written age ago. Unlike
// advancing the clock, it leaves links young.
func (e *env) backdate(d digest.Digest, age time.Duration) {
	e.t.Helper()
	hex := d.Encoded()
	// The filesystem driver keeps its path space under root/data.
	p := filepath.Join(e.root, "data", "blobs", string(d.Algorithm()), hex[:2], hex, "data")
	tm := time.Now().Add(-age)
	if err := os.Chtimes(p, tm, tm); err != nil {
		e.t.Fatal(err)
	}
}

// run collects with policy p and fails the test on error.
func (e *env) run(p *Policy) *Report {
	e.t.Helper()
	rep, err := Run(e.t.Context(), e.raw, e.blobs, e.options(p))
	if err != nil {
		e.t.Fatalf("gc: %v", err)
	}
	return rep
}

// later moves the clock past the grace period and any untagged period the
// tests use.
func (e *env) later() { e.clock.Advance(3 * grace) }

// push stores content as a blob and links it to repo, as a push does.
func (e *env) push(repo, content string) digest.Digest {
	e.t.Helper()
	d := digest.FromString(content)
	if err := e.pushErr(repo, content); err != nil {
		e.t.Fatalf("push blob %s to %s: %v", d, repo, err)
	}
	return d
}

func (e *env) pushErr(repo, content string) error {
	d := digest.FromString(content)
	size, err := e.blobs.Put(e.t.Context(), repo, d, strings.NewReader(content))
	if err != nil {
		return err
	}
	return e.meta.LinkBlob(e.t.Context(), repo, d, size)
}

// manifest builds a manifest whose content names it.
func manifest(name, mediaType string, blobs, children []digest.Digest, subject digest.Digest) *metadata.Manifest {
	content := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"name":%q}`, mediaType, name)
	return &metadata.Manifest{
		Digest: digest.FromString(content), MediaType: mediaType, Size: int64(len(content)), Content: []byte(content),
		Blobs: blobs, Manifests: children, Subject: subject,
	}
}

// image pushes a config and layers named after name, and a manifest over
// them and the extra (already pushed) blobs, tagged with tags.
func (e *env) image(repo, name string, extra []digest.Digest, tags ...string) *metadata.Manifest {
	e.t.Helper()
	blobs := []digest.Digest{e.push(repo, name+"/config"), e.push(repo, name+"/layer")}
	m := manifest(name, mtManifest, append(blobs, extra...), nil, "")
	e.put(repo, m, tags...)
	return m
}

// put stores manifest m, failing the test on error.
func (e *env) put(repo string, m *metadata.Manifest, tags ...string) {
	e.t.Helper()
	if err := e.meta.PutManifest(e.t.Context(), repo, m, tags...); err != nil {
		e.t.Fatalf("put manifest %s in %s: %v", m.Digest, repo, err)
	}
}

// wantManifest checks whether repo holds manifest d.
func (e *env) wantManifest(repo string, d digest.Digest, want bool) {
	e.t.Helper()
	_, err := e.meta.GetManifest(e.t.Context(), repo, d)
	if got := err == nil; got != want {
		e.t.Errorf("manifest %s in %s: present = %v (%v), want %v", short(d), repo, got, err, want)
	}
}

// wantBlob checks whether repo links blob d and whether its bytes are
// stored.
func (e *env) wantBlob(repo string, d digest.Digest, linked, stored bool) {
	e.t.Helper()
	_, err := e.meta.BlobSize(e.t.Context(), repo, d)
	if got := err == nil; got != linked {
		e.t.Errorf("blob %s in %s: linked = %v (%v), want %v", short(d), repo, got, err, linked)
	}
	_, err = e.blobs.Stat(e.t.Context(), d)
	if got := err == nil; got != stored {
		e.t.Errorf("blob %s: stored = %v (%v), want %v", short(d), got, err, stored)
	}
}

// wantImage checks that repo holds m, linked blobs and all, with bytes.
func (e *env) wantImage(repo string, m *metadata.Manifest, want bool) {
	e.t.Helper()
	e.wantManifest(repo, m.Digest, want)
	for _, b := range m.Blobs {
		e.wantBlob(repo, b, want, want || e.storedElsewhere(b))
	}
}

// storedElsewhere reports whether blob d's bytes are stored; for checks
// of an image whose blobs other images may share.
func (e *env) storedElsewhere(d digest.Digest) bool {
	_, err := e.blobs.Stat(e.t.Context(), d)
	return err == nil
}

// checkConsistent checks what must hold at any moment: every link has its
// bytes, every tag its manifest, and every tagged manifest its blobs
// (linked, with bytes) and, for an index, its children.
func (e *env) checkConsistent() {
	e.t.Helper()
	ctx := e.t.Context()
	repos, err := e.raw.Repositories(ctx, "", -1)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, repo := range repos {
		st := dump(e.t, e.raw, repo)
		if st == nil {
			continue
		}
		for _, b := range st.Blobs {
			if _, err := e.blobs.Stat(ctx, b.Digest); err != nil {
				e.t.Errorf("%s links blob %s whose bytes are gone: %v", repo, short(b.Digest), err)
			}
		}
		for _, tag := range st.Tags {
			e.checkTree(repo, tag.Manifest, "tag "+tag.Name)
		}
	}
}

// checkTree checks that manifest d of repo is there with its blobs and
// children.
func (e *env) checkTree(repo string, d digest.Digest, via string) {
	e.t.Helper()
	m, err := e.raw.GetManifest(e.t.Context(), repo, d)
	if err != nil {
		e.t.Errorf("%s: %s: manifest %s: %v", repo, via, short(d), err)
		return
	}
	for _, b := range m.Blobs {
		if _, err := e.raw.BlobSize(e.t.Context(), repo, b); err != nil {
			e.t.Errorf("%s: %s: blob %s of %s not linked: %v", repo, via, short(b), short(d), err)
		}
		if _, err := e.blobs.Stat(e.t.Context(), b); err != nil {
			e.t.Errorf("%s: %s: blob %s of %s not stored: %v", repo, via, short(b), short(d), err)
		}
	}
	for _, c := range m.Manifests {
		e.checkTree(repo, c, via)
	}
}

// dump returns the state of repo (nil if it does not exist).
func dump(t *testing.T, s metadata.Store, repo string) *metadata.RepositoryState {
	t.Helper()
	var st *metadata.RepositoryState
	_, err := s.CollectRepository(t.Context(), repo, func(rs *metadata.RepositoryState) (*metadata.Collection, error) {
		st = rs
		return nil, nil
	}, false)
	if errors.Is(err, metadata.ErrRepositoryNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// storedBlobs lists the digests of the stored blobs.
func (e *env) storedBlobs() []digest.Digest {
	e.t.Helper()
	var ds []digest.Digest
	err := e.blobs.WalkBlobs(e.t.Context(), func(b storage.BlobInfo) error {
		ds = append(ds, b.Digest)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(ds)
	return ds
}

// refs lists the references of a report's items.
func refs(items []Item) []string {
	out := []string{}
	for _, it := range items {
		if it.Repository != "" {
			out = append(out, it.Repository+"@"+it.Ref)
		} else {
			out = append(out, it.Ref)
		}
	}
	slices.Sort(out)
	return out
}

func short(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// mustPolicy compiles rules.
func mustPolicy(t *testing.T, rules ...Rule) *Policy {
	t.Helper()
	p, err := Retention(rules).Policy()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func intp(n int) *int { return &n }
