package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// TestMigrateToGC opens a database written at schema version 1 (before
// garbage collection) and checks that its links and tags got times: links
// the migration's, so they get a full grace period, tags their manifest's.
func TestMigrateToGC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	db, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {"foreign_keys(1)"}}))
	if err != nil {
		t.Fatal(err)
	}
	layer, img := digest.FromString("layer"), digest.FromString("image")
	pushed := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, q := range []string{
		migrations[0],
		"PRAGMA user_version = 1",
		"INSERT INTO repositories (id, name) VALUES (1, 'app')",
		fmt.Sprintf("INSERT INTO blobs (digest, size) VALUES ('%s', 5)", layer),
		fmt.Sprintf("INSERT INTO repo_blobs (repo_id, digest) VALUES (1, '%s')", layer),
		fmt.Sprintf(`INSERT INTO manifests (id, repo_id, digest, media_type, artifact_type, size, created_at, blob_list, content)
			VALUES (1, 1, '%s', 'm', 'a', 2, %d, '["%s"]', x'7b7d')`, img, pushed.UnixNano(), layer),
		"INSERT INTO tags (repo_id, name, manifest_id) VALUES (1, 'v1', 1)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	s := openClosed(t, path)
	after := time.Now()
	var st *metadata.RepositoryState
	_, err = s.CollectRepository(t.Context(), "app", func(rs *metadata.RepositoryState) (*metadata.Collection, error) {
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
	if len(st.Manifests) != 1 || len(st.Manifests[0].Blobs) != 1 || st.Manifests[0].Blobs[0] != layer {
		t.Errorf("migrated manifests = %+v", st.Manifests)
	}
}

// TestGCLockAcrossStores has two stores on one file, as two processes
// would: the lock of one excludes the other.
func TestGCLockAcrossStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	a, b := openClosed(t, path), openClosed(t, path)
	release, err := a.LockGC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r, err := b.LockGC(t.Context()); !errors.Is(err, metadata.ErrGCLocked) {
		if err == nil {
			r()
		}
		t.Fatalf("LockGC through a second store while the first holds it: %v, want ErrGCLocked", err)
	}
	release()
	r, err := b.LockGC(t.Context())
	if err != nil {
		t.Fatalf("LockGC after the holder released it: %v", err)
	}
	r()
}
