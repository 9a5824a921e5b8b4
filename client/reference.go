package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// ErrInvalidReference is the category of references that do not parse.
var ErrInvalidReference = errors.New("invalid reference")

// Reference names an image (or a repository) on a registry, normalised as Docker does:
// "ubuntu" is docker.io/library/ubuntu:latest, "localhost:5000/x" is on localhost:5000.
// The zero Reference is invalid.
type Reference struct {
	// Registry is the domain, "host[:port]": "docker.io", "localhost:5000", "ghcr.io".
	Registry string
	// Repository is the path on the registry: "library/ubuntu", "x", "org/app".
	Repository string
	// Tag, when set; ParseReference sets "latest" when neither tag nor digest is given.
	Tag string
	// Digest, when set. With a digest the tag is informational only: content is fetched
	// by digest.
	Digest digest.Digest
}

// ParseReference parses and normalises an image reference as Docker does: a missing domain
// is docker.io, a missing "library/" for single-component Docker Hub names is added, a
// missing tag and digest become the tag "latest". Names must be lower case.
func ParseReference(s string) (Reference, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
	}
	named = reference.TagNameOnly(named)
	return fromNamed(named), nil
}

// ParseRepository parses a repository name without tag or digest ("ubuntu",
// "localhost:5000/team/app"), normalised as ParseReference does.
func ParseRepository(s string) (Reference, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
	}
	if !reference.IsNameOnly(named) {
		return Reference{}, fmt.Errorf("%w %q: a repository takes no tag or digest", ErrInvalidReference, s)
	}
	return fromNamed(named), nil
}

func fromNamed(named reference.Named) Reference {
	r := Reference{Registry: reference.Domain(named), Repository: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
	}
	return r
}

// Name returns "registry/repository", e.g. "docker.io/library/ubuntu".
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String returns the full normalised reference: "docker.io/library/ubuntu:latest",
// "host/x@sha256:…", "host/x:tag@sha256:…".
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar returns the reference as Docker shows it: "ubuntu:latest", "user/app:1".
func (r Reference) Familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}

// Identifier returns what a manifest is fetched by: the digest if there is one, else the tag.
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// WithDigest returns the reference pinned to d, keeping its tag.
func (r Reference) WithDigest(d digest.Digest) Reference {
	r.Digest = d
	return r
}

// WithTag returns the reference with tag instead of its tag and digest.
func (r Reference) WithTag(tag string) Reference {
	r.Tag, r.Digest = tag, ""
	return r
}

// Repo returns the repository alone: the reference without tag and digest.
func (r Reference) Repo() Reference {
	r.Tag, r.Digest = "", ""
	return r
}

// Validate checks the reference's parts against the reference grammar.
func (r Reference) Validate() error {
	if r.Registry == "" || r.Repository == "" {
		return fmt.Errorf("%w %q: registry and repository are required", ErrInvalidReference, r.String())
	}
	if _, err := reference.ParseNamed(r.String()); err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidReference, r.String(), err)
	}
	if r.Digest != "" {
		if err := r.Digest.Validate(); err != nil {
			return fmt.Errorf("%w %q: %v", ErrInvalidReference, r.String(), err)
		}
	}
	return nil
}

// SplitSearchTerm splits a search as `docker search` takes it: "localhost:5000/app" searches
// "app" on localhost:5000; a term without a registry part searches Docker Hub.
func SplitSearchTerm(s string) (registry, term string) {
	if i := strings.IndexByte(s, '/'); i > 0 {
		first := s[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			return first, s[i+1:]
		}
	}
	return "docker.io", s
}
