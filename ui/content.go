package ui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
)

// Bounds of what one page reads.
const (
	// maxConfig is the largest image config shown.
	maxConfig = 1 << 20
	// maxListConfig is the largest config read for a row of a tag list.
	maxListConfig = 256 << 10
	// maxChildren is how many platforms of an index are read to add up
	// its size.
	maxChildren = 32
	// maxReferrers bounds the referrers tree: the nodes shown and its
	// depth (a signature of an SBOM of an image is depth 2).
	maxReferrers     = 200
	maxReferrerDepth = 4
	// maxRawManifest is the largest manifest shown as JSON.
	maxRawManifest = 256 << 10
)

// manifestDoc is the part of a manifest or index the pages show. OCI and
// Docker media types share these field names.
type manifestDoc struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	Annotations  map[string]string    `json:"annotations"`
}

func parseDoc(content []byte) (*manifestDoc, error) {
	var d manifestDoc
	if err := json.Unmarshal(content, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// kinds of manifests.
const (
	kindIndex    = "index"
	kindImage    = "image"
	kindArtifact = "artifact"
)

// configTypes are the config media types of container images.
var configTypes = map[string]bool{
	ocispec.MediaTypeImageConfig:                     true,
	"application/vnd.docker.container.image.v1+json": true,
}

// kindOf tells an index, a container image and another artifact apart.
func kindOf(mediaType string, d *manifestDoc) string {
	switch {
	case mediatype.IsIndex(mediaType):
		return kindIndex
	case d.ArtifactType != "" || d.Config == nil || !configTypes[d.Config.MediaType]:
		return kindArtifact
	}
	return kindImage
}

// typeLabel names a media type for people.
func typeLabel(mt string) string {
	switch mt {
	case mediatype.OCIIndex:
		return "OCI index"
	case mediatype.OCIManifest:
		return "OCI manifest"
	case mediatype.DockerManifestList:
		return "Docker manifest list"
	case mediatype.DockerManifest:
		return "Docker manifest"
	}
	return mt
}

// artifactLabel names what an artifact type is, for the referrers tree.
func artifactLabel(at string) string {
	switch {
	case at == "application/vnd.dev.cosign.artifact.sig.v1+json", at == "application/vnd.dev.cosign.simplesigning.v1+json",
		at == "application/vnd.cncf.notary.signature", strings.Contains(at, "signature"):
		return "signature"
	case strings.Contains(at, "spdx"), strings.Contains(at, "cyclonedx"), strings.Contains(at, "syft"), strings.Contains(at, "sbom"):
		return "SBOM"
	case strings.Contains(at, "in-toto"), strings.Contains(at, "attestation"), strings.Contains(at, "provenance"),
		strings.Contains(at, "dsse"):
		return "attestation"
	case strings.Contains(at, "vex"), strings.Contains(at, "vuln"), strings.Contains(at, "sarif"):
		return "scan report"
	}
	return "artifact"
}

// platformOf writes a platform as os/arch[/variant].
func platformOf(p *ocispec.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// attestationChild reports an index entry that is no platform but an
// attestation of one (as BuildKit writes them).
func attestationChild(d ocispec.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
		(d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown")
}

// imageConfig is the part of an image config the pages show.
type imageConfig struct {
	Created      *time.Time `json:"created"`
	Author       string     `json:"author"`
	Architecture string     `json:"architecture"`
	OS           string     `json:"os"`
	Variant      string     `json:"variant"`
	Config       struct {
		User         string              `json:"User"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		StopSignal   string              `json:"StopSignal"`
	} `json:"config"`
	History []struct {
		Created    *time.Time `json:"created"`
		CreatedBy  string     `json:"created_by"`
		Comment    string     `json:"comment"`
		EmptyLayer bool       `json:"empty_layer"`
	} `json:"history"`
}

// errTooLarge: a blob is larger than the page reads.
var errTooLarge = errors.New("too large to show")

// readConfig reads the config blob d of repository name through the
// registry, at most limit bytes of it.
func (u *UI) readConfig(ctx context.Context, name string, d digest.Digest, limit int64) (*imageConfig, error) {
	rc, size, err := u.opts.Blobs.OpenBlob(ctx, name, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	if !d.Algorithm().Available() || d.Algorithm().FromBytes(b) != d {
		return nil, errors.New("config does not match its digest")
	}
	var c imageConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if c.Created != nil && c.Created.IsZero() {
		c.Created = nil // reproducible builds leave it at the zero time
	}
	return &c, nil
}

// summary is what a tag list shows of a manifest.
type summary struct {
	Kind      string
	Type      string // media type or artifact type, for people
	Size      int64  // of the manifest and everything it references
	Partial   bool   // some of it could not be added up
	Platforms []string
	Created   *time.Time
}

// summarize describes manifest m of the served name, whose stored
// repositories are stored; it reads only what is stored (never asking an
// upstream), and at most maxChildren platforms of an index.
func (u *UI) summarize(ctx context.Context, name string, stored []string, m *metadata.Manifest) summary {
	s := summary{Size: m.Size}
	doc, err := parseDoc(m.Content)
	if err != nil {
		s.Kind, s.Type, s.Partial = kindArtifact, typeLabel(m.MediaType), true
		return s
	}
	s.Kind = kindOf(m.MediaType, doc)
	s.Type = typeLabel(m.MediaType)
	switch s.Kind {
	case kindIndex:
		for i, child := range doc.Manifests {
			if attestationChild(child) {
				continue
			}
			if p := platformOf(child.Platform); p != "" {
				s.Platforms = append(s.Platforms, p)
			}
			s.Size += child.Size
			if i >= maxChildren {
				s.Partial = true
				continue
			}
			cm := u.storedManifest(ctx, stored, child.Digest)
			if cm == nil {
				s.Partial = true
				continue
			}
			if cd, err := parseDoc(cm.Content); err == nil {
				s.Size += blobsSize(cd)
			}
		}
	case kindImage:
		s.Size += blobsSize(doc)
		if c := u.storedConfig(ctx, name, stored, doc.Config.Digest, maxListConfig); c != nil {
			if p := platformOf(&ocispec.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}); p != "/" {
				s.Platforms = []string{p}
			}
			s.Created = c.Created
		}
	default:
		s.Size += blobsSize(doc)
		s.Type = doc.ArtifactType
		if s.Type == "" && doc.Config != nil {
			s.Type = doc.Config.MediaType
		}
	}
	return s
}

// blobsSize adds up the config and layers of a manifest.
func blobsSize(d *manifestDoc) int64 {
	var n int64
	if d.Config != nil {
		n += d.Config.Size
	}
	for _, l := range d.Layers {
		n += l.Size
	}
	return n
}

// storedManifest returns manifest d from the first stored repository that
// has it, or nil.
func (u *UI) storedManifest(ctx context.Context, stored []string, d digest.Digest) *metadata.Manifest {
	for _, s := range stored {
		if m, err := u.opts.Meta.GetManifest(ctx, s, d); err == nil {
			return m
		}
	}
	return nil
}

// storedConfig reads config d of the served name when one of its stored
// repositories holds it, or returns nil: a listing never asks an
// upstream.
func (u *UI) storedConfig(ctx context.Context, name string, stored []string, d digest.Digest, limit int64) *imageConfig {
	for _, s := range stored {
		if _, err := u.opts.Meta.BlobSize(ctx, s, d); err == nil {
			c, err := u.readConfig(ctx, name, d, limit)
			if err != nil {
				return nil
			}
			return c
		}
	}
	return nil
}

// storedNames returns the stored repositories of a served name.
func (u *UI) storedNames(name string) []string {
	if u.opts.Connectors == nil {
		return []string{name}
	}
	return u.opts.Connectors.StoredNames(name)
}

// storedTag is a tag as metadata knows it, and the stored repository
// that holds it.
type storedTag struct {
	metadata.TagInfo
	repo string
}

// tagInfos returns what metadata knows of tags of the served name, by
// tag, from the first stored repository that has each.
func (u *UI) tagInfos(ctx context.Context, stored, tags []string) map[string]storedTag {
	out := map[string]storedTag{}
	if u.browser == nil {
		return out
	}
	for _, s := range stored {
		var want []string
		for _, t := range tags {
			if _, ok := out[t]; !ok {
				want = append(want, t)
			}
		}
		if len(want) == 0 {
			break
		}
		infos, err := u.browser.TagInfos(ctx, s, want)
		if err != nil {
			u.log.Warn("ui: tag details", "repo", s, "err", err)
			continue
		}
		for _, ti := range infos {
			out[ti.Name] = storedTag{TagInfo: ti, repo: s}
		}
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
