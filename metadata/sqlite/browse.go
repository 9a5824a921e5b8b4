package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

var _ metadata.Browser = (*Store)(nil)

// The tag names come as one JSON list, so the statement has a fixed shape
// whatever their number.
const sqlTagInfos = `SELECT t.name, m.digest, m.media_type, m.artifact_type, m.size, t.updated_at, m.created_at
FROM repositories AS r
JOIN tags AS t ON t.repo_id = r.id
JOIN manifests AS m ON m.id = t.manifest_id
WHERE r.name = ?1 AND t.name IN (SELECT value FROM json_each(?2))
ORDER BY t.name`

// Each count is a range of the repository's primary-key or unique index.
const sqlRepositoryUsage = `SELECT r.name,
	(SELECT count(*) FROM repo_blobs AS rb WHERE rb.repo_id = r.id),
	(SELECT coalesce(sum(b.size), 0) FROM repo_blobs AS rb JOIN blobs AS b ON b.digest = rb.digest WHERE rb.repo_id = r.id),
	(SELECT count(*) FROM manifests AS m WHERE m.repo_id = r.id),
	(SELECT coalesce(sum(m.size), 0) FROM manifests AS m WHERE m.repo_id = r.id)
FROM repositories AS r
WHERE r.name > ?1
ORDER BY r.name
LIMIT ?2`

// TagInfos implements metadata.Browser.
func (s *Store) TagInfos(ctx context.Context, repo string, tags []string) ([]metadata.TagInfo, error) {
	if len(tags) > metadata.MaxTagInfos {
		return nil, fmt.Errorf("metadata/sqlite: %d tags asked at once, at most %d", len(tags), metadata.MaxTagInfos)
	}
	out := []metadata.TagInfo{}
	if len(tags) == 0 {
		return out, nil
	}
	list, err := json.Marshal(tags)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, sqlTagInfos, repo, string(list))
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: tags of %s: %w", repo, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ti metadata.TagInfo
		var dgst string
		var pushed, created int64
		if err := rows.Scan(&ti.Name, &dgst, &ti.MediaType, &ti.ArtifactType, &ti.Size, &pushed, &created); err != nil {
			return nil, fmt.Errorf("metadata/sqlite: tags of %s: %w", repo, err)
		}
		ti.Digest = digest.Digest(dgst)
		ti.PushedAt, ti.CreatedAt = time.Unix(0, pushed).UTC(), time.Unix(0, created).UTC()
		out = append(out, ti)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata/sqlite: tags of %s: %w", repo, err)
	}
	return out, nil
}

// RepositoryUsage implements metadata.Browser.
func (s *Store) RepositoryUsage(ctx context.Context, last string, n int) ([]metadata.RepositoryUsage, error) {
	if n < 1 || n > metadata.MaxUsagePage {
		return nil, fmt.Errorf("metadata/sqlite: usage page of %d repositories, want 1 to %d", n, metadata.MaxUsagePage)
	}
	rows, err := s.rdb.QueryContext(ctx, sqlRepositoryUsage, last, n)
	if err != nil {
		return nil, fmt.Errorf("metadata/sqlite: repository usage: %w", err)
	}
	defer rows.Close()
	out := make([]metadata.RepositoryUsage, 0, capacity(n))
	for rows.Next() {
		var u metadata.RepositoryUsage
		if err := rows.Scan(&u.Name, &u.Blobs, &u.BlobBytes, &u.Manifests, &u.ManifestBytes); err != nil {
			return nil, fmt.Errorf("metadata/sqlite: repository usage: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metadata/sqlite: repository usage: %w", err)
	}
	return out, nil
}
