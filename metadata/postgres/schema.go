package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema versions, oldest first: migrations[i] takes a
// database from version i to i+1. Released entries are never edited, only
// appended to, because databases in the field already ran them; a change
// to the schema is a new entry. Each runs in the one transaction Migrate
// applies all pending versions in (DDL is transactional in PostgreSQL).
//
// Conventions the statements below rely on:
//   - Names and digests (repositories.name, tags.name, the digest columns)
//     use the "C" collation, so comparisons and ORDER BY are byte order,
//     the same as Go's string comparison and the order the distribution
//     spec asks for ("a" < "a-b" < "a/b" < "ab"), whatever the database's
//     default locale. Their indexes inherit the collation, so "name > $1
//     ORDER BY name" is a range scan.
//   - A blobs row exists only while some repo_blobs row links it, so
//     AnyBlobSize is one primary-key lookup, and a missing row tells
//     LinkBlob that the bytes may have been collected. repo_blobs.digest references
//     it without ON DELETE: a delete that would orphan a link fails rather
//     than losing it.
//   - A manifest's references are stored twice, in one transaction:
//     manifests.blob_list and manifest_list (arrays in manifest order, NULL
//     when empty) are what reads return, without a join on the hot path;
//     manifest_refs rows are the reverse index ("which manifests of this
//     repository reference blob d") for garbage collection and delete
//     checks.
//   - annotations is json, not jsonb: jsonb cannot hold "\u0000", which a
//     manifest's annotations may contain.
//   - created_at is timestamptz (microseconds).
//   - Child rows cascade from their parents, so deleting a manifest drops
//     its tags and references in the same statement.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE repositories (
	id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text COLLATE "C" NOT NULL,
	CONSTRAINT repositories_name_key UNIQUE (name)
);

CREATE TABLE blobs (
	digest text COLLATE "C" PRIMARY KEY,
	size   bigint NOT NULL
);

CREATE TABLE repo_blobs (
	repo_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
	digest  text COLLATE "C" NOT NULL REFERENCES blobs (digest),
	PRIMARY KEY (repo_id, digest)
);
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);

CREATE TABLE manifests (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	repo_id       bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
	digest        text COLLATE "C" NOT NULL,
	media_type    text NOT NULL,
	artifact_type text NOT NULL,
	size          bigint NOT NULL,
	subject       text COLLATE "C",
	annotations   json,
	created_at    timestamptz NOT NULL,
	blob_list     text[],
	manifest_list text[],
	content       bytea NOT NULL,
	CONSTRAINT manifests_by_digest UNIQUE (repo_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repo_id, subject, digest)
	WHERE subject IS NOT NULL;

CREATE TABLE manifest_refs (
	manifest_id bigint NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
	kind        smallint NOT NULL,
	position    integer NOT NULL,
	repo_id     bigint NOT NULL,
	child       text COLLATE "C" NOT NULL,
	PRIMARY KEY (manifest_id, kind, position)
);
CREATE INDEX manifest_refs_by_child ON manifest_refs (repo_id, child);

CREATE TABLE tags (
	repo_id     bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
	name        text COLLATE "C" NOT NULL,
	manifest_id bigint NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
	PRIMARY KEY (repo_id, name)
);
CREATE INDEX tags_by_manifest ON tags (manifest_id);
`,
	// 2: garbage collection. Links and tags get times: links existing
	// before take the migration's time, so they get a full grace period;
	// tags take their manifest's push time. gc_tombstones records what
	// collection removed (kind as in manifest_refs), so PutManifest can
	// refuse references to it; gc_runs holds the time of the last
	// complete collection.
	`
ALTER TABLE repo_blobs ADD COLUMN linked_at timestamptz NOT NULL DEFAULT statement_timestamp();

ALTER TABLE tags ADD COLUMN updated_at timestamptz;
UPDATE tags AS t SET updated_at = m.created_at FROM manifests AS m WHERE m.id = t.manifest_id;
ALTER TABLE tags
	ALTER COLUMN updated_at SET NOT NULL,
	ALTER COLUMN updated_at SET DEFAULT statement_timestamp();

CREATE TABLE gc_tombstones (
	repo       text COLLATE "C" NOT NULL,
	kind       smallint NOT NULL,
	digest     text COLLATE "C" NOT NULL,
	removed_at timestamptz NOT NULL,
	PRIMARY KEY (repo, kind, digest)
);

CREATE TABLE gc_runs (
	id          smallint PRIMARY KEY CHECK (id = 1),
	finished_at timestamptz NOT NULL
);
`,
	// 3: notifications. Each row is one event for one endpoint, queued in
	// the transaction of the change it reports and deleted once the
	// endpoint took it. next_at is when it is due; lease_owner and
	// lease_until hold a claim, taken with FOR UPDATE SKIP LOCKED so that
	// replicas claiming at once take different rows. Times are the
	// database's clock, which every replica shares.
	`
CREATE TABLE notification_queue (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	endpoint    text COLLATE "C" NOT NULL,
	payload     bytea NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
	next_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
	attempts    integer NOT NULL DEFAULT 0,
	lease_owner text,
	lease_until timestamptz,
	last_error  text
);
CREATE INDEX notification_queue_by_endpoint ON notification_queue (endpoint, id);
`,
}

// Kinds of manifest_refs and gc_tombstones rows.
const (
	refBlob     = 0 // a blob the manifest references (config, layer)
	refManifest = 1 // a child manifest of an index
)

// versionTable records the applied schema versions, one row each.
const versionTable = "berth_schema_migrations"

// migrationLock is the key of the transaction-scoped advisory lock that
// Migrate holds, so replicas starting at once apply each migration once.
// Advisory lock keys are per database; this one is berth's by convention
// (the first bytes of "berth-mg" as an integer).
const migrationLock int64 = 0x62657274682d6d67

// Migrate brings the schema of the database at dsn up to the version this
// build uses, applying what is missing in one transaction. It is safe to
// run from several processes at once: they queue on an advisory lock, and
// the first applies the migrations while the others find nothing left to
// do. A database whose schema is newer than this build knows is refused.
// Once the schema is current, Migrate needs no privilege beyond reading
// the version table.
func Migrate(ctx context.Context, dsn string) error {
	cfg, err := parseConfig(dsn)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("metadata/postgres: migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := migrate(ctx, conn); err != nil {
		return fmt.Errorf("metadata/postgres: migrate: %w", err)
	}
	return nil
}

// migrate runs the pending migrations on conn in one transaction.
func migrate(ctx context.Context, conn *pgx.Conn) error {
	return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// Released at commit or rollback, and by the server if the
		// connection drops.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		// Holding the lock, and in READ COMMITTED, each statement below
		// sees everything a previous holder committed.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
			return err
		}
		version := 0
		if exists {
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versionTable).Scan(&version); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
		}
		if version > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this build supports (%d)", version, len(migrations))
		}
		if version == len(migrations) {
			return nil
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE TABLE `+versionTable+` (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
				return fmt.Errorf("create %s: %w", versionTable, err)
			}
		}
		for v := version; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version) VALUES ($1)", v+1); err != nil {
				return fmt.Errorf("record schema version %d: %w", v+1, err)
			}
		}
		return nil
	})
}
