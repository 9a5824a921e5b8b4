package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/metadatatest"
)

func TestStore(t *testing.T) { metadatatest.Run(t, openTemp) }

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	metadatatest.RunPersistence(t, func(t *testing.T) metadata.Store { return openAt(t, path) })
}

// openTemp opens a store in a new file of the test's temporary directory.
func openTemp(t *testing.T) metadata.Store {
	return openAt(t, filepath.Join(t.TempDir(), "metadata.db"))
}

// openAt opens the store at path; closing it is left to the caller.
func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openClosed opens the store at path and closes it when the test ends.
func openClosed(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestOpenSettings(t *testing.T) {
	// A directory that does not exist yet, with characters a DSN could
	// misread.
	path := filepath.Join(t.TempDir(), "new dir?x=1#frag", "metadata.db")
	s := openClosed(t, path)
	ctx := t.Context()

	for _, c := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.wdb, "journal_mode", "wal"},
		{s.wdb, "synchronous", "2"}, // FULL
		{s.wdb, "foreign_keys", "1"},
		{s.wdb, "busy_timeout", "0"}, // beginWrite waits for the lock
		{s.rdb, "journal_mode", "wal"},
		{s.rdb, "query_only", "1"},
		{s.rdb, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if !strings.EqualFold(got, c.want) {
			name := "write"
			if c.db == s.rdb {
				name = "read"
			}
			t.Errorf("%s connection: PRAGMA %s = %s, want %s", name, c.pragma, got, c.want)
		}
	}

	// The file is where it was asked to be, not somewhere the URI
	// parameters pointed at.
	var file string
	if err := s.wdb.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	if file != path {
		t.Errorf("database file = %q, want %q", file, path)
	}

	// Read connections cannot write.
	if _, err := s.rdb.ExecContext(ctx, "INSERT INTO repositories (name) VALUES ('x')"); err == nil {
		t.Error("insert through a read connection succeeded")
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	version := func(s *Store) int {
		t.Helper()
		var v int
		if err := s.wdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	s := openAt(t, path)
	if v := version(s); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Opening again runs nothing and keeps the version.
	s = openAt(t, path)
	if v := version(s); v != len(migrations) {
		t.Errorf("user_version after reopen = %d, want %d", v, len(migrations))
	}

	// A database written by a newer build is refused, not misread.
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a database with a newer schema: %v", err)
	}
}

// TestQueryPlans pins the plans of the statements that must stay cheap at
// scale: each must search an index, never scan a table or sort.
func TestQueryPlans(t *testing.T) {
	s := openClosed(t, filepath.Join(t.TempDir(), "metadata.db"))
	for name, query := range map[string]string{
		"ResolveTag":     sqlResolveTag,
		"GetManifest":    sqlGetManifest,
		"BlobSize":       sqlBlobSize,
		"AnyBlobSize":    sqlAnyBlobSize,
		"Tags":           sqlTags,
		"Referrers":      sqlReferrers,
		"IndexesOf":      sqlIndexesOf,
		"BlobRepos":      sqlBlobRepositories,
		"Repositories":   sqlRepositories,
		"DeleteTag":      sqlDeleteTag,
		"prune":          sqlPruneRepo,
		"dropBlob":       sqlDropBlob,
		"blobRow":        sqlBlobRow,
		"collectedRefs":  sqlCollectedRefs,
		"clearTombstone": sqlClearTombstone,
		"stateTags":      sqlStateTags,
		"stateManifests": sqlStateManifests,
		"stateBlobs":     sqlStateBlobs,
		"blobLinked":     sqlBlobLinked,
		"collectTag":     sqlCollectTag,
	} {
		rows, err := s.wdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, "r", "x", 10, "[]", 10)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		for _, step := range plan {
			// A scan of a constant row or of a JSON list parameter reads
			// no table.
			if step == "SCAN CONSTANT ROW" || strings.HasPrefix(step, "SCAN json_each VIRTUAL TABLE") {
				continue
			}
			if strings.HasPrefix(step, "SCAN") || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s: plan step %q; full plan:\n\t%s", name, step, strings.Join(plan, "\n\t"))
			}
		}
	}
}

// TestConcurrentStores has two stores on one file, as two processes would
// be, write at once: the IMMEDIATE transactions and busy_timeout must
// queue them rather than fail with SQLITE_BUSY.
func TestConcurrentStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	stores := []*Store{openClosed(t, path), openClosed(t, path)}
	ctx := t.Context()
	const perStore = 30
	done := make(chan error, len(stores))
	for i, s := range stores {
		go func() {
			for j := range perStore {
				d := digest.FromString(fmt.Sprintf("%d-%d", i, j))
				m := &metadata.Manifest{Digest: d, MediaType: "m", Content: []byte("{}"), Size: 2}
				if err := s.PutManifest(ctx, "shared", m, fmt.Sprintf("s%d-%02d", i, j)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range stores {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range stores {
		tags, err := s.Tags(ctx, "shared", "", -1)
		if err != nil || len(tags) != len(stores)*perStore {
			t.Errorf("Tags = %d tags, %v; want %d", len(tags), err, len(stores)*perStore)
		}
	}
}

// bulkRepositories inserts count repositories named repo-000000… (each
// holding one blob, so they exist by the store's rule) in one transaction,
// far faster than count PutBlob calls.
func bulkRepositories(tb testing.TB, s *Store, count int) []string {
	tb.Helper()
	ctx := context.Background()
	names := make([]string, count)
	d := digest.FromString("bulk")
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO blobs (digest, size) VALUES (?1, 1)", string(d)); err != nil {
			return err
		}
		repo, err := tx.PrepareContext(ctx, "INSERT INTO repositories (name) VALUES (?1) RETURNING id")
		if err != nil {
			return err
		}
		defer repo.Close()
		link, err := tx.PrepareContext(ctx, "INSERT INTO repo_blobs (repo_id, digest) VALUES (?1, ?2)")
		if err != nil {
			return err
		}
		defer link.Close()
		for i := range names {
			names[i] = fmt.Sprintf("repo-%06d", i)
			var id int64
			if err := repo.QueryRowContext(ctx, names[i]).Scan(&id); err != nil {
				return err
			}
			if _, err := link.ExecContext(ctx, id, string(d)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, "ANALYZE"); err != nil {
		tb.Fatal(err)
	}
	return names
}

// TestBulkRepositoriesPaging checks the benchmark fixture and paging over a
// catalog larger than any page.
func TestBulkRepositoriesPaging(t *testing.T) {
	s := openClosed(t, filepath.Join(t.TempDir(), "metadata.db"))
	names := bulkRepositories(t, s, 2500)
	var got []string
	last := ""
	for {
		page, err := s.Repositories(t.Context(), last, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		last = page[len(page)-1]
	}
	if len(got) != len(names) || got[0] != names[0] || got[len(got)-1] != names[len(names)-1] {
		t.Errorf("paged %d repositories (%v…), want %d", len(got), got[:min(3, len(got))], len(names))
	}
}

func BenchmarkResolveTag(b *testing.B) {
	s := openClosed(b, filepath.Join(b.TempDir(), "metadata.db"))
	ctx := context.Background()
	const repos, tags = 100, 20
	for r := range repos {
		repo := fmt.Sprintf("org/repo-%03d", r)
		for i := range tags {
			var layers []digest.Digest
			for l := range 5 {
				layers = append(layers, digest.FromString(fmt.Sprintf("%d-%d-%d", r, i, l)))
			}
			content := []byte(fmt.Sprintf(`{"schemaVersion":2,"repo":%d,"tag":%d,"pad":"%s"}`, r, i, strings.Repeat("x", 1500)))
			m := &metadata.Manifest{
				Digest:    digest.FromBytes(content),
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Size:      int64(len(content)),
				Content:   content,
				Blobs:     layers,
			}
			if err := s.PutManifest(ctx, repo, m, fmt.Sprintf("v%02d", i)); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.ResolveTag(ctx, fmt.Sprintf("org/repo-%03d", i%repos), fmt.Sprintf("v%02d", i%tags)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.ResolveTag(ctx, fmt.Sprintf("org/repo-%03d", i%repos), fmt.Sprintf("v%02d", i%tags)); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// BenchmarkRepositoriesPage reads a 100,000-repository catalog in pages of
// 1,000; one op is one page, and the walk wraps around at the end, so the
// figure covers pages at every depth.
func BenchmarkRepositoriesPage(b *testing.B) {
	s := openClosed(b, filepath.Join(b.TempDir(), "metadata.db"))
	bulkRepositories(b, s, 100_000)
	ctx := context.Background()
	last := ""
	for b.Loop() {
		page, err := s.Repositories(ctx, last, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 {
			last = "" // wrap around
			continue
		}
		last = page[len(page)-1]
	}
}

// TestChangesOfAnotherProcess checks that a change another process (here,
// another store on the same file) commits is told as "" by the watch.
func TestChangesOfAnotherProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "metadata.db")
	a, b := openClosed(t, path), openClosed(t, path)
	got := make(chan string, 10)
	stop := a.Changes(func(repo string) { got <- repo })
	defer stop()
	content := []byte(`{"schemaVersion":2}`)
	m := &metadata.Manifest{Digest: digest.FromBytes(content), MediaType: "m", Size: int64(len(content)), Content: content}
	if err := b.PutManifest(t.Context(), "other/process", m, "v1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * externalPoll) // a bound against a hang
	for {
		select {
		case r := <-got:
			if r == "" {
				return
			}
		case <-deadline:
			t.Fatal("a change committed by another process was not told")
		}
	}
}

// TestWriteWaitsForAnotherProcess checks that a write finding the lock held
// by another connection to the file (here a second store, as berth gc would
// be) waits for it rather than failing with SQLITE_BUSY, and gives up when
// its context ends.
func TestWriteWaitsForAnotherProcess(t *testing.T) {
	busy := make(chan struct{}, 1)
	onBusy = func() {
		select {
		case busy <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { onBusy = nil })
	path := filepath.Join(t.TempDir(), "metadata.db")
	a, b := openClosed(t, path), openClosed(t, path)
	ctx := t.Context()
	held, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- b.write(ctx, func(*sql.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	m := func(s string) *metadata.Manifest {
		return &metadata.Manifest{Digest: digest.FromString(s), MediaType: "m", Content: []byte("{}"), Size: 2}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() { cancelled <- a.PutManifest(cctx, "held", m("cancelled"), "gone") }()
	<-busy // the write found the lock held and waits
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("a write cancelled while another store holds the lock: %v, want context.Canceled", err)
	}

	waited := make(chan error, 1)
	go func() { waited <- a.PutManifest(ctx, "held", m("waited"), "v1") }()
	<-busy
	close(release)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("a write while another store held the lock: %v, want it to wait and succeed", err)
	}
	if got, err := b.ResolveTag(ctx, "held", "v1"); err != nil || got.Digest != digest.FromString("waited") {
		t.Errorf("the other store sees tag v1 → %v, %v", got, err)
	}
	if _, err := b.ResolveTag(ctx, "held", "gone"); !errors.Is(err, metadata.ErrNotFound) && !errors.Is(err, metadata.ErrRepositoryNotFound) {
		t.Errorf("the cancelled write's tag: %v, want not found", err)
	}
}
