package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	_ "crypto/sha256" // digest algorithms
	_ "crypto/sha512"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/client/transport"
	"github.com/berthhq/berth/mediatype"
)

// Descriptor describes content by media type, digest and size (the OCI descriptor).
type Descriptor = ocispec.Descriptor

// Platform is an image's operating system and architecture (the OCI platform).
type Platform = ocispec.Platform

// Media types of manifests.
const (
	MediaTypeOCIManifest        = mediatype.OCIManifest
	MediaTypeOCIIndex           = mediatype.OCIIndex
	MediaTypeDockerManifest     = mediatype.DockerManifest
	MediaTypeDockerManifestList = mediatype.DockerManifestList
)

// manifestAccept is the Accept header of manifest requests.
var manifestAccept = mediatype.ManifestAccept

// MaxManifestSize bounds the manifests this client reads.
const MaxManifestSize = mediatype.MaxManifestSize

// Manifest is a manifest or an index as stored: its exact bytes and its descriptor.
type Manifest struct {
	Descriptor Descriptor
	Body       []byte
}

// IsIndex reports whether the manifest is an index (OCI index or Docker manifest list).
func (m *Manifest) IsIndex() bool { return IsIndexMediaType(m.Descriptor.MediaType) }

// IsIndexMediaType reports whether mt is an index media type.
func IsIndexMediaType(mt string) bool { return mediatype.IsIndex(mt) }

// Image decodes the manifest as an image manifest (OCI or Docker schema 2).
func (m *Manifest) Image() (*ocispec.Manifest, error) {
	if m.IsIndex() {
		return nil, fmt.Errorf("%s is an index, not an image manifest", m.Descriptor.Digest)
	}
	var im ocispec.Manifest
	if err := json.Unmarshal(m.Body, &im); err != nil {
		return nil, fmt.Errorf("decoding manifest %s: %w", m.Descriptor.Digest, err)
	}
	return &im, nil
}

// Index decodes the manifest as an index (OCI index or Docker manifest list).
func (m *Manifest) Index() (*ocispec.Index, error) {
	if !m.IsIndex() {
		return nil, fmt.Errorf("%s is an image manifest, not an index", m.Descriptor.Digest)
	}
	var ix ocispec.Index
	if err := json.Unmarshal(m.Body, &ix); err != nil {
		return nil, fmt.Errorf("decoding index %s: %w", m.Descriptor.Digest, err)
	}
	return &ix, nil
}

// Subject returns the manifest's subject descriptor, if it has one.
func (m *Manifest) Subject() *Descriptor {
	var v struct {
		Subject *Descriptor `json:"subject"`
	}
	if json.Unmarshal(m.Body, &v) != nil {
		return nil
	}
	return v.Subject
}

// NewManifest makes a Manifest of body with the given media type; an empty mediaType is
// read from the body's "mediaType" field (an OCI image manifest if it has none and no
// "manifests").
func NewManifest(mediaType string, body []byte) *Manifest {
	if mediaType == "" {
		mediaType = sniffMediaType(body)
	}
	d := Descriptor{MediaType: mediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	var v struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if json.Unmarshal(body, &v) == nil {
		d.ArtifactType = v.ArtifactType
		if d.ArtifactType == "" && mediaType == MediaTypeOCIManifest && v.Config.MediaType != ocispec.MediaTypeImageConfig &&
			v.Config.MediaType != ocispec.MediaTypeEmptyJSON {
			d.ArtifactType = v.Config.MediaType
		}
	}
	return &Manifest{Descriptor: d, Body: body}
}

func sniffMediaType(body []byte) string {
	var v struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(body, &v)
	switch {
	case v.MediaType != "":
		return v.MediaType
	case v.Manifests != nil:
		return MediaTypeOCIIndex
	}
	return MediaTypeOCIManifest
}

// cleanMediaType drops parameters from a Content-Type.
func cleanMediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// GetManifest fetches the manifest ref names (by digest if it has one, else by tag) and
// verifies it: against the reference's digest, or against the Docker-Content-Digest the
// registry announced. A mismatch is an ErrDigestMismatch and no manifest is returned.
func (c *Client) GetManifest(ctx context.Context, ref Reference) (*Manifest, error) {
	var m *Manifest
	err := c.do(ctx, ref.Registry, forPull, func(ep *endpoint) error {
		var err error
		m, err = c.getManifest(ctx, ep, ref)
		return err
	})
	return m, wrap("get manifest", ref.String(), err)
}

func (c *Client) getManifest(ctx context.Context, ep *endpoint, ref Reference) (*Manifest, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url("/v2/"+ref.Repository+"/manifests/"+ref.Identifier(), nil), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := ep.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes is larger than the limit of %d", resp.ContentLength, MaxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is larger than the limit of %d bytes", MaxManifestSize)
	}
	mt := cleanMediaType(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/json" || mt == "text/plain" || mt == "application/octet-stream" {
		mt = sniffMediaType(body)
	}
	want := ref.Digest
	if want == "" {
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
			d, err := digest.Parse(h)
			if err != nil {
				return nil, fmt.Errorf("%w: the registry announced an invalid digest %q", ErrDigestMismatch, h)
			}
			want = d
		}
	}
	m := NewManifest(mt, body)
	if want != "" {
		if err := verifyBytes(want, body); err != nil {
			return nil, err
		}
		m.Descriptor.Digest = want
	}
	return m, nil
}

// verifyBytes checks data against d.
func verifyBytes(d digest.Digest, data []byte) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrDigestMismatch, err)
	}
	got := d.Algorithm().FromBytes(data)
	if got != d {
		return fmt.Errorf("%w: content has digest %s, want %s", ErrDigestMismatch, got, d)
	}
	return nil
}

// HeadManifest returns the descriptor of the manifest ref names, without its body.
func (c *Client) HeadManifest(ctx context.Context, ref Reference) (Descriptor, error) {
	var d Descriptor
	err := c.do(ctx, ref.Registry, forPull, func(ep *endpoint) error {
		var err error
		d, err = c.headManifest(ctx, ep, ref)
		return err
	})
	return d, wrap("head manifest", ref.String(), err)
}

func (c *Client) headManifest(ctx context.Context, ep *endpoint, ref Reference) (Descriptor, error) {
	if err := ref.Validate(); err != nil {
		return Descriptor{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, ep.url("/v2/"+ref.Repository+"/manifests/"+ref.Identifier(), nil), nil)
	if err != nil {
		return Descriptor{}, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := ep.hc.Do(req)
	if err != nil {
		return Descriptor{}, err
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	d := Descriptor{MediaType: cleanMediaType(resp.Header.Get("Content-Type")), Digest: ref.Digest, Size: resp.ContentLength}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		hd, err := digest.Parse(h)
		if err != nil || (ref.Digest != "" && hd != ref.Digest) {
			return Descriptor{}, fmt.Errorf("%w: the registry announced digest %q for %s", ErrDigestMismatch, h, ref.Identifier())
		}
		d.Digest = hd
	}
	if d.Digest == "" || d.Size < 0 || d.MediaType == "" {
		// Not every registry answers HEAD fully; the body tells all.
		m, err := c.getManifest(ctx, ep, ref)
		if err != nil {
			return Descriptor{}, err
		}
		return m.Descriptor, nil
	}
	return d, nil
}

// PutManifest stores m under ref: by its tag (ref.Tag, when ref has no digest) or by digest.
// A manifest with a subject on a registry without the referrers API (it sends no
// OCI-Subject header) is also added to the subject's fallback tag "sha256-<hex>", so
// Referrers finds it there.
func (c *Client) PutManifest(ctx context.Context, ref Reference, m *Manifest) (Descriptor, error) {
	var d Descriptor
	err := c.do(ctx, ref.Registry, forPush, func(ep *endpoint) error {
		var err error
		d, err = c.putManifest(ctx, ep, ref, m)
		return err
	})
	return d, wrap("put manifest", ref.String(), err)
}

func (c *Client) putManifest(ctx context.Context, ep *endpoint, ref Reference, m *Manifest) (Descriptor, error) {
	if err := ref.Validate(); err != nil {
		return Descriptor{}, err
	}
	if err := verifyBytes(m.Descriptor.Digest, m.Body); err != nil {
		return Descriptor{}, err
	}
	ident := ref.Tag
	if ref.Digest != "" || ident == "" {
		if ref.Digest != "" && ref.Digest != m.Descriptor.Digest {
			return Descriptor{}, fmt.Errorf("%w: manifest %s put as %s", ErrDigestMismatch, m.Descriptor.Digest, ref.Digest)
		}
		ident = m.Descriptor.Digest.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, ep.url("/v2/"+ref.Repository+"/manifests/"+ident, nil), bytes.NewReader(m.Body))
	if err != nil {
		return Descriptor{}, err
	}
	req.Header.Set("Content-Type", m.Descriptor.MediaType)
	resp, err := ep.hc.Do(req)
	if err != nil {
		return Descriptor{}, err
	}
	if err := transport.CheckResponse(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted); err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != m.Descriptor.Digest.String() {
		return Descriptor{}, fmt.Errorf("%w: the registry stored the manifest as %s, want %s", ErrDigestMismatch, h, m.Descriptor.Digest)
	}
	if subj := m.Subject(); subj != nil && resp.Header.Get("OCI-Subject") == "" {
		if err := c.addFallbackReferrer(ctx, ep, ref.Repo(), *subj, m.Descriptor); err != nil {
			return Descriptor{}, fmt.Errorf("updating the referrers tag of %s: %w", subj.Digest, err)
		}
	}
	return m.Descriptor, nil
}

// DeleteManifest deletes the manifest ref names: by digest it removes the manifest (and
// every tag of it); by tag, registries that support it remove just the tag. A registry that
// refuses because a kept index lists the manifest (409 MANIFEST_REFERENCED) gives an error
// matching ErrReferenced; ReferencingIndexes finds such indexes before deleting.
func (c *Client) DeleteManifest(ctx context.Context, ref Reference) error {
	err := c.do(ctx, ref.Registry, forPush, func(ep *endpoint) error {
		if err := ref.Validate(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, ep.url("/v2/"+ref.Repository+"/manifests/"+ref.Identifier(), nil), nil)
		if err != nil {
			return err
		}
		resp, err := ep.hc.Do(req)
		if err != nil {
			return err
		}
		if err := transport.CheckResponse(resp, http.StatusAccepted, http.StatusOK, http.StatusNoContent); err != nil {
			var re *RegistryError
			if errors.As(err, &re) && re.StatusCode == http.StatusConflict && re.HasCode("MANIFEST_REFERENCED") {
				return fmt.Errorf("%w: %w", ErrReferenced, err)
			}
			return err
		}
		resp.Body.Close()
		return nil
	})
	return wrap("delete manifest", ref.String(), err)
}

// Resolve returns the descriptor of the manifest ref names (HEAD, falling back to GET).
func (c *Client) Resolve(ctx context.Context, ref Reference) (Descriptor, error) {
	d, err := c.HeadManifest(ctx, ref)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "resolve"
		}
	}
	return d, err
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
