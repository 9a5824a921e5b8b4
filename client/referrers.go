package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/client/transport"
)

// ReferrersTag returns the tag under which registries without the referrers API keep the
// referrers of d: "<alg>-<hex>".
func ReferrersTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// Referrers lists the manifests whose subject is ref's manifest (ref's digest, or the
// digest its tag resolves to), of the given artifact type ("" for all). It uses the
// referrers API, and on registries without it (a 404) the fallback tag ReferrersTag.
func (c *Client) Referrers(ctx context.Context, ref Reference, artifactType string) ([]Descriptor, error) {
	var out []Descriptor
	err := c.do(ctx, ref.Registry, forPull, func(ep *endpoint) error {
		subject := ref.Digest
		if subject == "" {
			d, err := c.headManifest(ctx, ep, ref)
			if err != nil {
				return err
			}
			subject = d.Digest
		}
		var err error
		out, err = c.referrers(ctx, ep, ref.Repo(), subject, artifactType)
		return err
	})
	return out, wrap("list referrers", ref.String(), err)
}

func (c *Client) referrers(ctx context.Context, ep *endpoint, repo Reference, subject digest.Digest, artifactType string) ([]Descriptor, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReference, err)
	}
	q := url.Values{}
	if artifactType != "" {
		q.Set("artifactType", artifactType)
	}
	next, err := url.Parse(ep.url("/v2/"+repo.Repository+"/referrers/"+subject.String(), q))
	if err != nil {
		return nil, err
	}
	var out []Descriptor
	for i := 0; next != nil; i++ {
		if i >= maxPages || next.Host != ep.URL.Host {
			return nil, fmt.Errorf("referrers: bad pagination at %s", next.Redacted())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", MediaTypeOCIIndex)
		resp, err := ep.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if i == 0 && resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			return c.fallbackReferrers(ctx, ep, repo, subject, artifactType)
		}
		if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
			return nil, err
		}
		var ix ocispec.Index
		err = json.NewDecoder(io.LimitReader(resp.Body, MaxManifestSize)).Decode(&ix)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("decoding the referrers of %s: %w", subject, err)
		}
		filtered := slices.Contains(strings.Split(resp.Header.Get("OCI-Filters-Applied"), ","), "artifactType")
		for _, d := range ix.Manifests {
			if artifactType == "" || filtered || d.ArtifactType == artifactType {
				out = append(out, d)
			}
		}
		if next, err = transport.NextLink(resp); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fallbackReferrers reads the referrers index kept under the fallback tag.
func (c *Client) fallbackReferrers(ctx context.Context, ep *endpoint, repo Reference, subject digest.Digest, artifactType string) ([]Descriptor, error) {
	m, err := c.getManifest(ctx, ep, repo.WithTag(ReferrersTag(subject)))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ix, err := m.Index()
	if err != nil {
		return nil, err
	}
	var out []Descriptor
	for _, d := range ix.Manifests {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, nil
}

// addFallbackReferrer adds desc to the referrers index under subject's fallback tag.
func (c *Client) addFallbackReferrer(ctx context.Context, ep *endpoint, repo Reference, subject, desc Descriptor) error {
	tag := repo.WithTag(ReferrersTag(subject.Digest))
	ix := ocispec.Index{MediaType: MediaTypeOCIIndex}
	ix.SchemaVersion = 2
	old, err := c.getManifest(ctx, ep, tag)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		prev, err := old.Index()
		if err != nil {
			return err
		}
		ix.Manifests = prev.Manifests
	}
	for _, d := range ix.Manifests {
		if d.Digest == desc.Digest {
			return nil
		}
	}
	entry := Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, ArtifactType: desc.ArtifactType, Annotations: desc.Annotations}
	ix.Manifests = append(ix.Manifests, entry)
	body, err := json.Marshal(ix)
	if err != nil {
		return err
	}
	_, err = c.putManifest(ctx, ep, tag, NewManifest(MediaTypeOCIIndex, body))
	return err
}
