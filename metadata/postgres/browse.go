package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

var _ metadata.Browser = (*Store)(nil)

const (
	sqlTagInfos = `SELECT t.name, m.digest, m.media_type, m.artifact_type, m.size, t.updated_at, m.created_at
FROM repositories AS r
JOIN tags AS t ON t.repo_id = r.id
JOIN manifests AS m ON m.id = t.manifest_id
WHERE r.name = $1 AND t.name = ANY($2::text[])
ORDER BY t.name`

	// Each count is a range of the repository's primary-key or unique
	// index.
	sqlRepositoryUsage = `SELECT r.name,
	(SELECT count(*) FROM repo_blobs AS rb WHERE rb.repo_id = r.id),
	(SELECT coalesce(sum(b.size), 0)::bigint FROM repo_blobs AS rb JOIN blobs AS b ON b.digest = rb.digest WHERE rb.repo_id = r.id),
	(SELECT count(*) FROM manifests AS m WHERE m.repo_id = r.id),
	(SELECT coalesce(sum(m.size), 0)::bigint FROM manifests AS m WHERE m.repo_id = r.id)
FROM repositories AS r
WHERE r.name > $1
ORDER BY r.name
LIMIT $2`
)

// TagInfos implements metadata.Browser.
func (s *Store) TagInfos(ctx context.Context, repo string, tags []string) ([]metadata.TagInfo, error) {
	if len(tags) > metadata.MaxTagInfos {
		return nil, fmt.Errorf("metadata/postgres: %d tags asked at once, at most %d", len(tags), metadata.MaxTagInfos)
	}
	out := []metadata.TagInfo{}
	if len(tags) == 0 {
		return out, nil
	}
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, sqlTagInfos, repo, tags)
		if err != nil {
			return err
		}
		var ti metadata.TagInfo
		var dgst string
		var pushed, created time.Time
		_, err = pgx.ForEachRow(rows, []any{&ti.Name, &dgst, &ti.MediaType, &ti.ArtifactType, &ti.Size, &pushed, &created}, func() error {
			ti.Digest = digest.Digest(dgst)
			ti.PushedAt, ti.CreatedAt = pushed.UTC(), created.UTC()
			out = append(out, ti)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: tags of %s: %w", repo, err)
	}
	return out, nil
}

// RepositoryUsage implements metadata.Browser.
func (s *Store) RepositoryUsage(ctx context.Context, last string, n int) ([]metadata.RepositoryUsage, error) {
	if n < 1 || n > metadata.MaxUsagePage {
		return nil, fmt.Errorf("metadata/postgres: usage page of %d repositories, want 1 to %d", n, metadata.MaxUsagePage)
	}
	var out []metadata.RepositoryUsage
	err := s.retry(ctx, func() error {
		out = make([]metadata.RepositoryUsage, 0, capacity(n))
		rows, err := s.pool.Query(ctx, sqlRepositoryUsage, last, n)
		if err != nil {
			return err
		}
		var u metadata.RepositoryUsage
		_, err = pgx.ForEachRow(rows, []any{&u.Name, &u.Blobs, &u.BlobBytes, &u.Manifests, &u.ManifestBytes}, func() error {
			out = append(out, u)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metadata/postgres: repository usage: %w", err)
	}
	return out, nil
}
