package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema versions, oldest first: migrations[i] takes a
// database from user_version i to i+1. Released entries are never edited,
// only appended to, because databases in the field already ran them; a
// change to the schema is a new entry.
//
// Conventions the statements below rely on:
//   - Names (repositories.name, tags.name) use BINARY collation, so SQL
//     ordering is byte order, the same as Go's string comparison and the
//     order the distribution spec asks for ("a" < "a-b" < "a/b" < "ab").
//   - manifests.content is the last column: SQLite stores a row's columns in
//     order, and a large manifest spills into overflow pages, so anything
//     after it would cost extra page reads for the referrers listing, which
//     never needs the content.
//   - A blobs row exists only while some repo_blobs row links it, so
//     AnyBlobSize is one primary-key lookup, and a missing row tells
//     LinkBlob that the bytes may have been collected.
//   - A manifest's references are stored twice, in one transaction:
//     manifests.blob_list and manifest_list (JSON arrays in manifest order,
//     NULL when empty) are what reads return, without a join on the hot
//     path; manifest_refs rows are the reverse index ("which manifests of
//     this repository reference blob d") for garbage collection and
//     delete checks.
//   - Child rows cascade from their parents (foreign_keys is on for every
//     connection), so deleting a manifest drops its tags and references in
//     the same statement.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE repositories (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL COLLATE BINARY
);
CREATE UNIQUE INDEX repositories_by_name ON repositories (name);

CREATE TABLE blobs (
	digest TEXT PRIMARY KEY,
	size   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE repo_blobs (
	repo_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
	digest  TEXT NOT NULL REFERENCES blobs (digest),
	PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);

CREATE TABLE manifests (
	id            INTEGER PRIMARY KEY,
	repo_id       INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
	digest        TEXT NOT NULL,
	media_type    TEXT NOT NULL,
	artifact_type TEXT NOT NULL,
	size          INTEGER NOT NULL,
	subject       TEXT,
	annotations   TEXT,
	created_at    INTEGER NOT NULL,
	blob_list     TEXT,
	manifest_list TEXT,
	content       BLOB NOT NULL
);
CREATE UNIQUE INDEX manifests_by_digest ON manifests (repo_id, digest);
CREATE INDEX manifests_by_subject ON manifests (repo_id, subject, digest)
	WHERE subject IS NOT NULL;

CREATE TABLE manifest_refs (
	manifest_id INTEGER NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
	kind        INTEGER NOT NULL,
	position    INTEGER NOT NULL,
	repo_id     INTEGER NOT NULL,
	child       TEXT NOT NULL,
	PRIMARY KEY (manifest_id, kind, position)
) WITHOUT ROWID;
CREATE INDEX manifest_refs_by_child ON manifest_refs (repo_id, child);

CREATE TABLE tags (
	repo_id     INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
	name        TEXT NOT NULL COLLATE BINARY,
	manifest_id INTEGER NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
	PRIMARY KEY (repo_id, name)
) WITHOUT ROWID;
CREATE INDEX tags_by_manifest ON tags (manifest_id);
`,
	// 2: garbage collection. Links and tags get times (nanoseconds since
	// the Unix epoch, as manifests.created_at): links existing before
	// take the migration's time, so they get a full grace period; tags
	// take their manifest's push time. gc_tombstones records what
	// collection removed (kind as in manifest_refs), so PutManifest can
	// refuse references to it; gc_runs holds the time of the last
	// complete collection.
	`
ALTER TABLE repo_blobs ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
UPDATE repo_blobs SET linked_at = CAST(unixepoch('subsec') * 1000000000 AS INTEGER);

ALTER TABLE tags ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE tags SET updated_at = (SELECT m.created_at FROM manifests AS m WHERE m.id = tags.manifest_id);

CREATE TABLE gc_tombstones (
	repo       TEXT NOT NULL COLLATE BINARY,
	kind       INTEGER NOT NULL,
	digest     TEXT NOT NULL,
	removed_at INTEGER NOT NULL,
	PRIMARY KEY (repo, kind, digest)
) WITHOUT ROWID;

CREATE TABLE gc_runs (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	finished_at INTEGER NOT NULL
);
`,
	// 3: notifications. Each row is one event for one endpoint, queued in
	// the transaction of the change it reports and deleted once the
	// endpoint took it. next_at is when it is due (nanoseconds since the
	// Unix epoch, as elsewhere); lease_owner and lease_until hold a claim
	// (lease_until 0: none). AUTOINCREMENT keeps ids growing after the
	// newest row is deleted, so they order events across a restart.
	`
CREATE TABLE notification_queue (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	endpoint    TEXT NOT NULL COLLATE BINARY,
	payload     BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	next_at     INTEGER NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	lease_owner TEXT,
	lease_until INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT
);
CREATE INDEX notification_queue_by_endpoint ON notification_queue (endpoint, id);
`,
}

// Kinds of manifest_refs and gc_tombstones rows.
const (
	refBlob     = 0 // a blob the manifest references (config, layer)
	refManifest = 1 // a child manifest of an index
)

// migrate brings the schema of db up to the latest version, which SQLite
// keeps in the file header (PRAGMA user_version). It runs in one
// IMMEDIATE transaction (the write handle's begin mode), so two processes
// opening a new file at once cannot both apply a migration, and a failing
// migration leaves the previous version intact.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := beginWrite(ctx, db)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this build supports (%d)", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; the value is an integer we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return tx.Commit()
}
