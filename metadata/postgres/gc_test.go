package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/metadata"
)

// TestMigrateToGC migrates a database written at schema version 1 (before
// garbage collection) and checks that its links and tags got times: links
// the migration's, so they get a full grace period, tags their manifest's.
func TestMigrateToGC(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	layer, img := digest.FromString("layer"), digest.FromString("image")
	pushed := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, q := range []string{
		"CREATE TABLE " + versionTable + " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		migrations[0],
		"INSERT INTO " + versionTable + " (version) VALUES (1)",
		"INSERT INTO repositories (name) VALUES ('app')",
		fmt.Sprintf("INSERT INTO blobs (digest, size) VALUES ('%s', 5)", layer),
		fmt.Sprintf("INSERT INTO repo_blobs (repo_id, digest) SELECT id, '%s' FROM repositories", layer),
		fmt.Sprintf(`INSERT INTO manifests (repo_id, digest, media_type, artifact_type, size, created_at, blob_list, content)
			SELECT id, '%s', 'm', 'a', 2, '%s', ARRAY['%s'], '{}' FROM repositories`, img, pushed.Format(time.RFC3339), layer),
		"INSERT INTO tags (repo_id, name, manifest_id) SELECT repo_id, 'v1', id FROM manifests",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}

	before := time.Now()
	s := openClosed(t, dsn)
	after := time.Now()
	var st *metadata.RepositoryState
	_, err = s.CollectRepository(ctx, "app", func(rs *metadata.RepositoryState) (*metadata.Collection, error) {
		st = rs
		return nil, nil
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tags) != 1 || !st.Tags[0].UpdatedAt.Equal(pushed) || st.Tags[0].Manifest != img {
		t.Errorf("migrated tags = %+v, want v1 → %s updated at %v", st.Tags, img, pushed)
	}
	if len(st.Blobs) != 1 || st.Blobs[0].LinkedAt.Before(before.Add(-time.Second)) || st.Blobs[0].LinkedAt.After(after.Add(time.Second)) {
		t.Errorf("migrated links = %+v, want one linked between %v and %v", st.Blobs, before, after)
	}
}

// TestGCLockAcrossReplicas has two stores with their own pools (two berth
// nodes) take the collection lock, and checks that a holder whose
// connection dies loses it.
func TestGCLockAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	ctx := t.Context()
	a, b := openClosed(t, dsn), openClosed(t, dsn)
	release, err := a.LockGC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := b.LockGC(ctx); !errors.Is(err, metadata.ErrGCLocked) {
		if err == nil {
			r()
		}
		t.Fatalf("LockGC on a second replica while the first holds it: %v, want ErrGCLocked", err)
	}
	release()
	releaseB, err := b.LockGC(ctx)
	if err != nil {
		t.Fatalf("LockGC after the holder released it: %v", err)
	}

	// The holder's connection dies (a crashed node): the server drops the
	// lock, and the holder's release does not fail.
	var pid int
	err = a.pool.QueryRow(ctx, `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, gcLock).Scan(&pid)
	if err != nil {
		t.Fatalf("find the lock holder: %v", err)
	}
	if _, err := a.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := a.LockGC(ctx)
		if err == nil {
			r()
			break
		}
		if !errors.Is(err, metadata.ErrGCLocked) || time.Now().After(deadline) {
			t.Fatalf("LockGC after the holder's connection died: %v", err)
		}
	}
	releaseB()
}
