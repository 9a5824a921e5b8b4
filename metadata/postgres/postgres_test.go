package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/metadatatest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	metadatatest.Run(t, func(t *testing.T) metadata.Store { return openAt(t, testenv.StartPostgres(t)) })
}

// TestStoreSimpleProtocol runs the suite as a deployment behind a
// transaction-pooling PgBouncer would: nothing prepared, every value sent
// and received as text.
func TestStoreSimpleProtocol(t *testing.T) {
	t.Parallel()
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		return openAt(t, withParam(t, testenv.StartPostgres(t), "default_query_exec_mode", "simple_protocol"))
	})
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	metadatatest.RunPersistence(t, func(t *testing.T) metadata.Store { return openAt(t, dsn) })
}

// withParam sets a query parameter of a postgres:// URL.
func withParam(t testing.TB, dsn, name, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// openAt opens the store at dsn; closing it is left to the caller.
func openAt(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openClosed opens the store at dsn and closes it when the test ends.
func openClosed(t testing.TB, dsn string) *Store {
	t.Helper()
	s := openAt(t, dsn)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, dsn := range []string{
		"postgres://berth:s3cret-pw@[::1/berth",
		"postgres://berth:s3cret-pw@" + closed + "/berth?sslmode=disable&connect_timeout=5",
		"host=127.0.0.1 password=s3cret-pw pool_max_conns=many",
	} {
		s, err := Open(t.Context(), dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open error shows the password: %v", err)
		}
		if err := Migrate(t.Context(), dsn); err == nil {
			t.Errorf("Migrate(%q) succeeded", dsn)
		} else if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Migrate error shows the password: %v", err)
		}
	}
}

// TestConnectionSettings checks the defaults Open sets and that the DSN
// overrides them.
func TestConnectionSettings(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	show := func(s *Store, name string) string {
		t.Helper()
		var v string
		if err := s.pool.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := openClosed(t, dsn)
	if got := show(s, "application_name"); got != "berth" {
		t.Errorf("application_name = %q, want berth", got)
	}
	// The Tags transaction's planner setting does not outlive it.
	if _, err := s.Tags(t.Context(), "none", "", 10); !errors.Is(err, metadata.ErrRepositoryNotFound) {
		t.Fatalf("Tags of an unknown repository: %v", err)
	}
	if got := show(s, "enable_bitmapscan"); got != "on" {
		t.Errorf("enable_bitmapscan after Tags = %q, want on", got)
	}
	s = openClosed(t, withParam(t, dsn, "application_name", "registry-1"))
	if got := show(s, "application_name"); got != "registry-1" {
		t.Errorf("application_name = %q, want the DSN's registry-1", got)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	ctx := t.Context()

	// Replicas starting at once: each must succeed, and the migrations
	// must run once (without the lock, the second CREATE TABLE fails).
	// The connections are made first, so the migrations overlap.
	const starts = 6
	conns := make([]*pgx.Conn, starts)
	for i := range conns {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		conns[i] = conn
	}
	errs := make(chan error, starts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Go(func() {
			<-start
			errs <- migrate(ctx, conn)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}

	s := openClosed(t, dsn)
	versions := func() []int {
		t.Helper()
		rows, err := s.pool.Query(ctx, "SELECT version FROM "+versionTable+" ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		v, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := make([]int, len(migrations))
	for i := range want {
		want[i] = i + 1
	}
	if got := versions(); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}

	// Again, through the exported function: nothing to do, nothing
	// recorded twice.
	if err := Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	if got := versions(); !slices.Equal(got, want) {
		t.Errorf("applied versions after a second Migrate = %v, want %v", got, want)
	}

	// A database migrated by a newer build is refused, not misread.
	if _, err := s.pool.Exec(ctx, "INSERT INTO "+versionTable+" (version) VALUES ($1)", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Migrate of a database with a newer schema: %v, want an error saying so", err)
	}
	if s2, err := Open(ctx, dsn); err == nil {
		s2.Close()
		t.Error("Open of a database with a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a database with a newer schema: %v", err)
	}
}

// TestMigrateRollsBack checks that a failing migration leaves the database
// as it was: no tables, no version.
func TestMigrateRollsBack(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	ctx := t.Context()
	// Occupy a name the first migration creates.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE tags (x int)"); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, dsn); err == nil {
		t.Fatal("Migrate succeeded over a conflicting table")
	}
	var tables []string
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tables, []string{"tags"}) {
		t.Errorf("tables after a failed migration = %v, want only the conflicting one", tables)
	}
}

// TestReplicaRaces runs, from two stores with their own connection pools
// (two berth nodes sharing a database), the writes whose interleavings
// could lose data without the repository and blob row locks: a push into
// a repository while its last content is deleted, and a push of a blob
// into one repository while another drops its last link to it. Each round
// starts both writes at once; afterwards what was pushed must be there.
func TestReplicaRaces(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	a, b := openClosed(t, dsn), openClosed(t, dsn)
	ctx := t.Context()
	const rounds = 150

	// together runs f and g at the same moment and waits for both.
	together := func(f, g func() error) (error, error) {
		var ef, eg error
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; ef = f() })
		wg.Go(func() { <-start; eg = g() })
		close(start)
		wg.Wait()
		return ef, eg
	}
	layer := func(i int) digest.Digest { return digest.FromString(fmt.Sprintf("race layer %d", i)) }
	image := func(i int) *metadata.Manifest {
		content := []byte(fmt.Sprintf(`{"schemaVersion":2,"round":%d}`, i))
		return &metadata.Manifest{Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size: int64(len(content)), Content: content, Blobs: []digest.Digest{layer(i)}}
	}

	t.Run("blob pushed while the last one is deleted", func(t *testing.T) {
		const repo = "race/blobs"
		if err := a.PutBlob(ctx, repo, layer(0), 1); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= rounds; i++ {
			ePut, eDel := together(
				func() error { return a.PutBlob(ctx, repo, layer(i), int64(i)) },
				func() error { return b.DeleteBlob(ctx, repo, layer(i-1)) },
			)
			if ePut != nil || eDel != nil {
				t.Fatalf("round %d: PutBlob: %v; DeleteBlob: %v", i, ePut, eDel)
			}
			if size, err := b.BlobSize(ctx, repo, layer(i)); err != nil || size != int64(i) {
				t.Fatalf("round %d: BlobSize of the pushed blob = %d, %v", i, size, err)
			}
		}
		wantRepos(t, a, repo)
	})

	t.Run("manifest pushed while the last one is deleted", func(t *testing.T) {
		const repo = "race/manifests"
		if err := a.PutManifest(ctx, repo, image(0), "latest"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= rounds; i++ {
			ePut, eDel := together(
				func() error { return a.PutManifest(ctx, repo, image(i), "latest", fmt.Sprintf("r%03d", i)) },
				func() error { return b.DeleteManifest(ctx, repo, image(i-1).Digest) },
			)
			if ePut != nil || eDel != nil {
				t.Fatalf("round %d: PutManifest: %v; DeleteManifest: %v", i, ePut, eDel)
			}
			m, err := b.ResolveTag(ctx, repo, fmt.Sprintf("r%03d", i))
			if err != nil || m.Digest != image(i).Digest {
				t.Fatalf("round %d: ResolveTag of the pushed tag = %v, %v", i, m, err)
			}
		}
		// Each round's delete removed the previous manifest with its
		// tags, so what is left is the last push with both of its tags.
		tags, err := a.Tags(ctx, repo, "", -1)
		if want := []string{"latest", fmt.Sprintf("r%03d", rounds)}; err != nil || !slices.Equal(tags, want) {
			t.Errorf("Tags = %v, %v; want %v", tags, err, want)
		}
		wantRepos(t, a, "race/blobs", repo)
	})

	t.Run("blob pushed while another repository drops it", func(t *testing.T) {
		for i := 1; i <= rounds; i++ {
			d := digest.FromString(fmt.Sprintf("shared layer %d", i))
			if err := a.PutBlob(ctx, "race/from", d, 7); err != nil {
				t.Fatal(err)
			}
			ePut, eDel := together(
				func() error { return a.PutBlob(ctx, "race/to", d, 7) },
				func() error { return b.DeleteBlob(ctx, "race/from", d) },
			)
			if ePut != nil || eDel != nil {
				t.Fatalf("round %d: PutBlob: %v; DeleteBlob: %v", i, ePut, eDel)
			}
			if size, err := b.AnyBlobSize(ctx, d); err != nil || size != 7 {
				t.Fatalf("round %d: AnyBlobSize = %d, %v; want 7", i, size, err)
			}
			if size, err := b.BlobSize(ctx, "race/to", d); err != nil || size != 7 {
				t.Fatalf("round %d: BlobSize = %d, %v; want 7", i, size, err)
			}
		}
	})

	if n := a.retries.Load() + b.retries.Load(); n != 0 {
		t.Errorf("%d transactions were retried; the lock order should avoid every conflict", n)
	}
}

// TestReplicaTagStorm has several stores push manifests with overlapping
// tags, given in different orders, into one repository while tags are
// deleted: every call must succeed without a deadlock (which PostgreSQL
// would report after deadlock_timeout, and retry would hide).
func TestReplicaTagStorm(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	stores := []*Store{openClosed(t, dsn), openClosed(t, dsn), openClosed(t, dsn)}
	ctx := t.Context()
	const repo, perWorker = "storm/app", 40
	tags := []string{"a", "b", "c", "d", "latest"}

	var wg sync.WaitGroup
	for w, s := range stores {
		wg.Go(func() {
			for i := range perWorker {
				content := []byte(fmt.Sprintf(`{"schemaVersion":2,"w":%d,"i":%d}`, w, i))
				m := &metadata.Manifest{Digest: digest.FromBytes(content), MediaType: "m", Size: int64(len(content)), Content: content}
				order := slices.Clone(tags)
				if (w+i)%2 == 1 {
					slices.Reverse(order)
				}
				if err := s.PutManifest(ctx, repo, m, order...); err != nil {
					t.Errorf("worker %d: PutManifest: %v", w, err)
					return
				}
				if i%5 == 4 {
					// Another worker may have deleted it first.
					if err := s.DeleteTag(ctx, repo, tags[i%len(tags)]); err != nil && !errors.Is(err, metadata.ErrNotFound) {
						t.Errorf("worker %d: DeleteTag: %v", w, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	var retries int64
	for _, s := range stores {
		retries += s.retries.Load()
	}
	if retries != 0 {
		t.Errorf("%d transactions were retried; tags locked in one order should not deadlock", retries)
	}
	// Whatever the interleaving, each remaining tag resolves.
	names, err := stores[0].Tags(ctx, repo, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range names {
		if _, err := stores[1].ResolveTag(ctx, repo, tag); err != nil {
			t.Errorf("ResolveTag(%s): %v", tag, err)
		}
	}
}

// wantRepos checks the whole catalog.
func wantRepos(t *testing.T, s *Store, want ...string) {
	t.Helper()
	got, err := s.Repositories(t.Context(), "", -1)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Repositories = %q, %v; want %q", got, err, want)
	}
}

// TestNulInAnnotations checks that annotation values PostgreSQL's text
// types cannot hold (NUL) round-trip through the json column.
func TestNulInAnnotations(t *testing.T) {
	t.Parallel()
	s := openClosed(t, testenv.StartPostgres(t))
	ctx := t.Context()
	content := []byte(`{"schemaVersion":2}`)
	m := &metadata.Manifest{Digest: digest.FromBytes(content), MediaType: "m", Size: 2, Content: content,
		Annotations: map[string]string{"k\x00": "v\x00w"}}
	if err := s.PutManifest(ctx, "app", m, "t"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResolveTag(ctx, "app", "t")
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["k\x00"] != "v\x00w" {
		t.Errorf("Annotations = %q", got.Annotations)
	}
}

// TestQueryPlans pins the plans of the statements that must stay cheap at
// scale: over a fixture of a few thousand rows, with statistics, each must
// find its rows through an index, never by scanning a table, and the
// listings must come in index order, never sorted. Both the plans for the
// first executions (custom, for the values given) and the generic plan
// that pgx's prepared statements settle on are checked.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := openClosed(t, testenv.StartPostgres(t))
	ctx := t.Context()
	fixture := []string{
		`INSERT INTO repositories (name) SELECT 'org/repo-' || lpad(i::text, 5, '0') FROM generate_series(1, 3000) AS i`,
		`INSERT INTO blobs (digest, size) SELECT 'sha256:' || md5(i::text), i FROM generate_series(1, 3000) AS i`,
		`INSERT INTO repo_blobs (repo_id, digest) SELECT id, 'sha256:' || md5(id::text) FROM repositories`,
		`INSERT INTO manifests (repo_id, digest, media_type, artifact_type, size, subject, created_at, content)
			SELECT r.id, 'sha256:' || md5(r.id || '-' || j), 'm', 'a', 2,
				CASE WHEN j > 3 THEN 'sha256:' || md5(r.id || '-1') END, now(), '{}'
			FROM repositories AS r, generate_series(1, 5) AS j`,
		`INSERT INTO tags (repo_id, name, manifest_id) SELECT repo_id, 'v' || id, id FROM manifests`,
		// One repository with many tags, where reading them in order
		// from the index must win over collecting and sorting them.
		`INSERT INTO tags (repo_id, name, manifest_id)
			SELECT m.repo_id, 'big-' || lpad(i::text, 5, '0'), m.id
			FROM manifests AS m, generate_series(1, 5000) AS i
			WHERE m.digest = 'sha256:' || md5('7-1')`,
		`INSERT INTO gc_tombstones (repo, kind, digest, removed_at)
			SELECT 'org/repo-' || lpad((i % 3000)::text, 5, '0'), i % 2, 'sha256:' || md5('t' || i), now()
			FROM generate_series(1, 3000) AS i`,
		`INSERT INTO manifest_refs (manifest_id, kind, position, repo_id, child)
			SELECT id, j % 2, j, repo_id, 'sha256:' || md5(id || '/' || j)
			FROM manifests, generate_series(0, 3) AS j`,
		`VACUUM ANALYZE`,
	}
	for _, q := range fixture {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	for _, c := range []struct {
		name  string
		query string
		args  []any
		// unordered allows collecting the rows in any order (a bitmap
		// scan) and sorting them: for a few rows, or when all are read.
		unordered bool
	}{
		{"ResolveTag", sqlResolveTag, []any{"org/repo-00042", "v7"}, false},
		{"GetManifest", sqlGetManifest, []any{"org/repo-00042", "sha256:x"}, false},
		{"BlobSize", sqlBlobSize, []any{"org/repo-00042", "sha256:x"}, false},
		{"AnyBlobSize", sqlAnyBlobSize, []any{"sha256:x"}, false},
		{"Tags", sqlTags, []any{"org/repo-00007", "", 100}, false},
		{"Tags (next page)", sqlTags, []any{"org/repo-00007", "big-01000", 100}, false},
		{"Tags (all)", sqlTags, []any{"org/repo-00007", "", nil}, true},
		{"Tags (few)", sqlTags, []any{"org/repo-00042", "", 100}, false},
		// The join's output has no order PostgreSQL can see, so the rows
		// of one subject are sorted: a handful, found by the index.
		{"Referrers", sqlReferrers, []any{"org/repo-00042", "sha256:x", "", "", 1001}, true},
		{"Referrers (filtered)", sqlReferrers, []any{"org/repo-00042", "sha256:x", "a", "sha256:a", 1001}, true},
		{"IndexesOf", sqlIndexesOf, []any{"org/repo-00042", "sha256:x", 10}, true},
		{"BlobRepositories", sqlBlobRepositories, []any{"sha256:x"}, true},
		{"Repositories", sqlRepositories, []any{"org/repo-01000", 100}, false},
		{"Repositories (first page)", sqlRepositories, []any{"", 1000}, false},
		{"Search", sqlSearchRepositories, []any{"repo-0004", 25}, false},
		{"DeleteTag", sqlDeleteTag, []any{"org/repo-00042", "v7"}, false},
		{"DeleteManifest", sqlDeleteManifest, []any{42, "sha256:x"}, false},
		{"prune", sqlPruneRepo, []any{42}, false},
		{"dropBlob", sqlDropBlob, []any{"sha256:x"}, false},
		{"lockRepo", sqlLockRepo, []any{"org/repo-00042"}, false},
		{"collectedRefs", sqlCollectedRefs, []any{"org/repo-00042", []string{"sha256:x", "sha256:y"}, 42, []string{"sha256:z"}}, false},
		{"clearTombstone", sqlClearTombstone, []any{"org/repo-00042", 0, "sha256:x"}, false},
		{"stateTags", sqlStateTags, []any{42}, true},
		{"stateTags (many)", sqlStateTags, []any{7}, true},
		{"stateManifests", sqlStateManifests, []any{42}, true},
		{"stateBlobs", sqlStateBlobs, []any{42}, true},
		{"blobLinked", sqlBlobLinked, []any{"sha256:x"}, false},
		{"dropBlobs", sqlDropBlobs, []any{[]string{"sha256:x"}}, true},
		{"collectTags", sqlCollectTags, []any{42, []string{"v1"}}, true},
		{"collectManifests", sqlCollectManifests, []any{42, []string{"sha256:x"}}, true},
		{"collectLinks", sqlCollectLinks, []any{42, []string{"sha256:x"}}, true},
	} {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			var settings []string
			if c.query == sqlTags {
				settings = []string{sqlTagsPlan}
			}
			plan := explain(t, s, mode, settings, c.query, c.args)
			var problems []string
			walkPlan(plan, func(node map[string]any) {
				switch kind, _ := node["Node Type"].(string); {
				case kind == "Seq Scan":
					problems = append(problems, fmt.Sprintf("scans table %v", node["Relation Name"]))
				case kind == "Sort" && !c.unordered:
					problems = append(problems, "sorts")
				case kind == "Bitmap Heap Scan" && !c.unordered:
					problems = append(problems, fmt.Sprintf("bitmap scan of %v (no order, reads every match)", node["Relation Name"]))
				}
				// The referrers index must be entered by repository and
				// subject, not scanned for the subject across repositories.
				if c.query == sqlReferrers && node["Relation Name"] == "manifests" {
					if cond, _ := node["Index Cond"].(string); !strings.Contains(cond, "repo_id") || !strings.Contains(cond, "subject") {
						problems = append(problems, fmt.Sprintf("enters manifests by %q", cond))
					}
				}
			})
			if problems != nil {
				b, _ := json.MarshalIndent(plan, "\t", "  ")
				t.Errorf("%s (%s): %s; plan:\n\t%s", c.name, mode, strings.Join(problems, ", "), b)
			}
		}
	}
}

// explain returns the plan PostgreSQL makes for query in the given
// plan_cache_mode, after the SET LOCAL statements in settings, as EXPLAIN
// (FORMAT JSON) gives it.
func explain(t *testing.T, s *Store, mode string, settings []string, query string, args []any) map[string]any {
	t.Helper()
	ctx := t.Context()
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The prepared statement stays with this connection, so it is taken
	// out of the pool and closed.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, set := range append([]string{"SET LOCAL plan_cache_mode = " + mode}, settings...) {
		if _, err := tx.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, "PREPARE q AS "+query); err != nil {
		t.Fatalf("PREPARE %s: %v", query, err)
	}
	placeholders := make([]string, len(args))
	for i := range args {
		placeholders[i] = fmt.Sprintf("$%d", i+1)
	}
	// A utility statement takes no parameters: pgx's simple protocol
	// mode quotes the values into the text.
	var out []map[string]any
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE q("+strings.Join(placeholders, ", ")+")",
		append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...).Scan(&out); err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	plan, _ := out[0]["Plan"].(map[string]any)
	return plan
}

// walkPlan calls fn for every node of an EXPLAIN (FORMAT JSON) plan.
func walkPlan(node map[string]any, fn func(map[string]any)) {
	if node == nil {
		return
	}
	fn(node)
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		child, _ := c.(map[string]any)
		walkPlan(child, fn)
	}
}

// bulkRepositories loads count repositories named repo-000000… (each
// holding one blob, so they exist by the store's rule) with COPY, far
// faster than count PutBlob calls, and refreshes the planner statistics.
func bulkRepositories(tb testing.TB, s *Store, count int) []string {
	tb.Helper()
	ctx := context.Background()
	names := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf("repo-%06d", i)
	}
	d := string(digest.FromString("bulk"))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"repositories"}, []string{"name"},
			pgx.CopyFromSlice(count, func(i int) ([]any, error) { return []any{names[i]}, nil })); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO blobs (digest, size) VALUES ($1, 1)", d); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO repo_blobs (repo_id, digest) SELECT id, $1 FROM repositories", d)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
		tb.Fatal(err)
	}
	return names
}

// TestBulkRepositoriesPaging checks the benchmark fixture and paging over a
// catalog larger than any page.
func TestBulkRepositoriesPaging(t *testing.T) {
	t.Parallel()
	s := openClosed(t, testenv.StartPostgres(t))
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
	if !slices.Equal(got, names) {
		t.Errorf("paged %d repositories (%v…), want %d", len(got), got[:min(3, len(got))], len(names))
	}
}

func BenchmarkResolveTag(b *testing.B) {
	s := openClosed(b, testenv.StartPostgres(b))
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
	if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
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
// 1,000; one op is one page. "walk" wraps around at the end, so its figure
// covers pages at every depth (as SQLite's benchmark of the same name);
// "first" and "last" read the first and the last full page, which should
// cost the same.
func BenchmarkRepositoriesPage(b *testing.B) {
	s := openClosed(b, testenv.StartPostgres(b))
	names := bulkRepositories(b, s, 100_000)
	ctx := context.Background()
	page := func(b *testing.B, last string) []string {
		page, err := s.Repositories(ctx, last, 1000)
		if err != nil {
			b.Fatal(err)
		}
		return page
	}
	b.Run("walk", func(b *testing.B) {
		last := ""
		for b.Loop() {
			p := page(b, last)
			if len(p) == 0 {
				last = "" // wrap around
				continue
			}
			last = p[len(p)-1]
		}
	})
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			page(b, "")
		}
	})
	b.Run("last", func(b *testing.B) {
		last := names[len(names)-1001]
		for b.Loop() {
			if p := page(b, last); len(p) != 1000 {
				b.Fatalf("last page has %d names", len(p))
			}
		}
	})
}

// BenchmarkPutManifest measures a push of a tagged five-layer image.
func BenchmarkPutManifest(b *testing.B) {
	s := openClosed(b, testenv.StartPostgres(b))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		content := []byte(fmt.Sprintf(`{"schemaVersion":2,"i":%d}`, i))
		var layers []digest.Digest
		for l := range 5 {
			layers = append(layers, digest.FromString(fmt.Sprintf("%d-%d", i, l)))
		}
		m := &metadata.Manifest{Digest: digest.FromBytes(content), MediaType: "m", Size: int64(len(content)), Content: content, Blobs: layers}
		if err := s.PutManifest(ctx, fmt.Sprintf("org/repo-%02d", i%50), m, "latest", fmt.Sprintf("v%d", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
