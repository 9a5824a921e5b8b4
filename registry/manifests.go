package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
)

// Manifest media types berth stores (the shared vocabulary, package
// mediatype).
const (
	MediaTypeOCIManifest    = mediatype.OCIManifest
	MediaTypeOCIIndex       = mediatype.OCIIndex
	MediaTypeDockerManifest = mediatype.DockerManifest
	MediaTypeDockerList     = mediatype.DockerManifestList
)

func isIndex(mt string) bool { return mediatype.IsIndex(mt) }
func isImage(mt string) bool { return mediatype.IsImage(mt) }

// descriptor is the OCI descriptor, as manifests hold it.
type descriptor = ocispec.Descriptor

// manifestDoc holds the fields of any manifest or index berth looks at.
type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// nondistributable reports whether a layer may legitimately be absent from
// the registry: it is fetched from its URLs instead.
func nondistributable(d descriptor) bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, "nondistributable") || d.MediaType == mediatype.DockerForeignLayer
}

func validateDescriptor(d *descriptor, what string) error {
	if d.MediaType == "" {
		return errf(ErrManifestInvalid, "%s has no mediaType", what)
	}
	if _, _, err := mime.ParseMediaType(d.MediaType); err != nil {
		return errf(ErrManifestInvalid, "%s has an invalid mediaType %q", what, d.MediaType)
	}
	if err := validDigest(d.Digest); err != nil {
		return errf(ErrManifestInvalid, "%s has an invalid digest %q: %v", what, d.Digest, err)
	}
	if d.Size < 0 {
		return errf(ErrManifestInvalid, "%s has a negative size", what)
	}
	return nil
}

func validDigest(d digest.Digest) error {
	_, err := parseDigest(string(d))
	return err
}

// plainType strips parameters from a Content-Type. Generic JSON types say
// nothing about the manifest and count as absent.
func plainType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	if mt == "application/json" || mt == "application/octet-stream" {
		return ""
	}
	return mt
}

// parseManifest validates a manifest body sent with the given Content-Type
// and returns what metadata keeps of it. It does not check references.
func parseManifest(contentType string, body []byte) (*metadata.Manifest, *manifestDoc, error) {
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, errf(ErrManifestInvalid, "manifest is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errf(ErrManifestInvalid, "manifest has data after the JSON document")
	}
	if err := checkStrictJSON(body); err != nil {
		return nil, nil, err
	}
	ct := plainType(contentType)
	mt := doc.MediaType
	switch {
	case mt != "" && ct != "" && mt != ct:
		return nil, nil, errf(ErrManifestInvalid, "Content-Type %q does not match the manifest's mediaType %q", ct, mt)
	case mt == "":
		mt = ct
	}
	if err := ambiguous(&doc, mt, mt != ""); err != nil {
		return nil, nil, err
	}
	if mt == "" {
		switch {
		case doc.Manifests != nil:
			mt = MediaTypeOCIIndex
		case doc.Config != nil:
			mt = MediaTypeOCIManifest
		default:
			return nil, nil, errf(ErrManifestInvalid, "cannot tell the manifest's media type: no mediaType field or Content-Type")
		}
	}
	if mt == mediatype.DockerSchema1 || mt == mediatype.DockerSchema1Signed {
		return nil, nil, errf(ErrManifestInvalid, "Docker schema 1 manifests are not supported; push schema 2 or OCI")
	}
	if !isImage(mt) && !isIndex(mt) {
		return nil, nil, errf(ErrManifestInvalid, "unsupported manifest media type %q", mt)
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return nil, nil, errf(ErrManifestInvalid, "schemaVersion must be 2")
	}
	if doc.ArtifactType != "" {
		if _, _, err := mime.ParseMediaType(doc.ArtifactType); err != nil {
			return nil, nil, errf(ErrManifestInvalid, "artifactType %q is not a valid media type", doc.ArtifactType)
		}
	}
	m := &metadata.Manifest{MediaType: mt, ArtifactType: doc.ArtifactType, Annotations: doc.Annotations, Size: int64(len(body)), Content: body}
	if isImage(mt) {
		if doc.Config == nil {
			return nil, nil, errf(ErrManifestInvalid, "image manifest has no config")
		}
		if err := validateDescriptor(doc.Config, "config"); err != nil {
			return nil, nil, err
		}
		m.Blobs = append(m.Blobs, doc.Config.Digest)
		if m.ArtifactType == "" {
			m.ArtifactType = doc.Config.MediaType
		}
		for i := range doc.Layers {
			if err := validateDescriptor(&doc.Layers[i], fmt.Sprintf("layer %d", i)); err != nil {
				return nil, nil, err
			}
			m.Blobs = append(m.Blobs, doc.Layers[i].Digest)
		}
	} else {
		for i := range doc.Manifests {
			if err := validateDescriptor(&doc.Manifests[i], fmt.Sprintf("manifest %d", i)); err != nil {
				return nil, nil, err
			}
			m.Manifests = append(m.Manifests, doc.Manifests[i].Digest)
		}
	}
	if doc.Subject != nil {
		if err := validateDescriptor(doc.Subject, "subject"); err != nil {
			return nil, nil, err
		}
		m.Subject = doc.Subject.Digest
	}
	return m, &doc, nil
}

// ParseManifest validates a manifest body as a push would (media type from
// the body or contentType, schema version, descriptors) and returns what
// metadata keeps of it, without its digest and without checking that the
// blobs it references are stored. It is for code that stores manifests it
// fetched elsewhere (connectors).
func ParseManifest(contentType string, body []byte) (*metadata.Manifest, error) {
	m, _, err := parseManifest(contentType, body)
	return m, err
}

// checkReferences makes sure the blobs an image needs are in the repository.
func (reg *Registry) checkReferences(r *http.Request, name string, doc *manifestDoc, mt string) error {
	if !isImage(mt) {
		// Indexes may be sparse: their children can arrive later or never.
		return nil
	}
	check := func(d descriptor, what string) error {
		size, err := reg.meta.BlobSize(r.Context(), name, d.Digest)
		if errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrRepositoryNotFound) {
			return &Error{Code: ErrManifestBlobUnknown, Message: fmt.Sprintf("%s blob %s is not in repository %s", what, d.Digest, name), Detail: map[string]string{"digest": d.Digest.String()}}
		}
		if err != nil {
			return err
		}
		if size != d.Size {
			return errf(ErrManifestInvalid, "%s blob %s has %d bytes, the manifest says %d", what, d.Digest, size, d.Size)
		}
		return nil
	}
	if err := check(*doc.Config, "config"); err != nil {
		return err
	}
	if reg.opts.RequireLayers {
		for _, l := range doc.Layers {
			if nondistributable(l) {
				continue
			}
			if err := check(l, "layer"); err != nil {
				return err
			}
		}
	}
	return nil
}

func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	max := reg.opts.MaxManifestSize
	if r.ContentLength > max {
		return errf(ErrManifestTooLarge, "manifest of %d bytes exceeds the limit of %d", r.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if errors.Is(err, ErrBodyStalled) {
		return errf(ErrBodyTimeout, "reading manifest: %v", err)
	}
	if err != nil {
		return errf(ErrManifestInvalid, "reading manifest: %v", err)
	}
	if int64(len(body)) > max {
		return errf(ErrManifestTooLarge, "manifest exceeds the limit of %d bytes", max)
	}
	var tags []string
	var d digest.Digest
	if isDigestRef(rt.Ref) {
		want, err := parseDigest(rt.Ref)
		if err != nil {
			return err
		}
		d = want.Algorithm().FromBytes(body)
		if d != want {
			return &Error{Code: ErrDigestInvalid, Message: fmt.Sprintf("manifest has digest %s, not %s", d, want), Detail: map[string]string{"digest": want.String()}}
		}
	} else {
		if !ValidTag(rt.Ref) {
			return &Error{Code: ErrTagInvalid, Message: fmt.Sprintf("invalid tag %q", rt.Ref)}
		}
		d = digest.Canonical.FromBytes(body)
		tags = append(tags, rt.Ref)
	}
	for _, t := range r.URL.Query()["tag"] {
		if !ValidTag(t) {
			return &Error{Code: ErrTagInvalid, Message: fmt.Sprintf("invalid tag %q", t)}
		}
		tags = append(tags, t)
	}
	m, doc, err := parseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	m.Digest = d
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	if err := reg.checkReferences(r, t.Name, doc, m.MediaType); err != nil {
		return err
	}
	acts := []Action{{Kind: ActionPush, Repository: rt.Name, Digest: d, MediaType: m.MediaType, Size: m.Size}}
	for i, tag := range tags {
		if i > 0 {
			acts = append(acts, acts[0])
		}
		acts[i].Tag = tag
	}
	err = reg.meta.PutManifest(reg.prepare(r, acts...), t.Name, m, tags...)
	if errors.Is(err, metadata.ErrCollected) {
		err = errf(ErrManifestBlobUnknown, "content this manifest references was removed by garbage collection after it was checked; push it again")
	}
	for _, a := range acts {
		reg.audit(r, a, err)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.Name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if m.Subject != "" {
		h.Set("OCI-Subject", m.Subject.String())
	}
	for _, t := range r.URL.Query()["tag"] {
		h.Add("OCI-Tag", t)
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusCreated)
	return nil
}

// accepts reports whether the request's Accept headers allow media type mt.
// No Accept header, or a wildcard, allows anything.
func accepts(r *http.Request, mt string) bool {
	vals := r.Header.Values("Accept")
	if len(vals) == 0 {
		return true
	}
	// Clients list plain media types: an entry without parameters that
	// names mt or a wildcard accepts it, as the full parse below would
	// find, without allocating on every manifest request.
	for _, v := range vals {
		for rest := v; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ",")
			part = strings.TrimSpace(part)
			if strings.EqualFold(part, mt) || part == "*/*" || strings.EqualFold(part, "application/*") {
				return true
			}
		}
	}
	seen := false
	for _, v := range vals {
		for _, part := range strings.Split(v, ",") {
			t, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || t == "" {
				continue
			}
			seen = true
			if t == mt || t == "*/*" || t == "application/*" {
				return true
			}
		}
	}
	return !seen
}

// lookupManifest validates rt's reference and asks repo for the manifest.
func (reg *Registry) lookupManifest(r *http.Request, rt Route, repo Repository) (*Manifest, error) {
	if isDigestRef(rt.Ref) {
		if _, err := parseDigest(rt.Ref); err != nil {
			return nil, err
		}
	} else if !ValidTag(rt.Ref) {
		return nil, &Error{Code: ErrTagInvalid, Message: fmt.Sprintf("invalid tag %q", rt.Ref)}
	}
	m, err := repo.Manifest(r.Context(), rt.Ref)
	return m, metaErr(err, ErrManifestUnknown, rt.Name)
}

// negotiate picks what to send a client that does not accept m's media
// type: for an index, the linux/amd64 image it lists, as older Docker
// clients expect.
func (reg *Registry) negotiate(r *http.Request, rt Route, repo Repository, m *Manifest) (*Manifest, error) {
	if accepts(r, m.MediaType) {
		return m, nil
	}
	if isIndex(m.MediaType) {
		var doc manifestDoc
		if json.Unmarshal(m.Content, &doc) == nil {
			for _, c := range doc.Manifests {
				if c.Platform != nil && c.Platform.OS == "linux" && c.Platform.Architecture == "amd64" && accepts(r, c.MediaType) {
					child, err := repo.Manifest(r.Context(), c.Digest.String())
					if err == nil {
						child.Stale = m.Stale
						return child, nil
					}
				}
			}
		}
	}
	return nil, errf(ErrManifestUnknown, "manifest %s is %s, which the request's Accept header does not allow", rt.Ref, m.MediaType)
}

func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	repo, err := reg.resolve(rt)
	if err != nil {
		return err
	}
	m, err := reg.lookupManifest(r, rt, repo)
	if err != nil {
		return err
	}
	if m, err = reg.negotiate(r, rt, repo, m); err != nil {
		return err
	}
	h := w.Header()
	if m.Stale {
		h.Set("Warning", StaleWarning)
	}
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(m.Content)))
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Etag", `"`+m.Digest.String()+`"`)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, m.Digest.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.Content)
		a := Action{Repository: rt.Name, Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Content))}
		if !isDigestRef(rt.Ref) {
			a.Tag = rt.Ref
		}
		reg.pulled(r, a)
	}
	return nil
}

// StaleWarning marks content served without the upstream's word on it
// (RFC 9111's warn-code 110).
const StaleWarning = `110 berth "Response is Stale"`

// checkUnreferenced refuses to delete manifest d of repo while an index
// of the repository lists it: the index, and every tag on it, would stop
// being pullable.
func (reg *Registry) checkUnreferenced(r *http.Request, repo string, d digest.Digest) error {
	parents, err := reg.meta.IndexesOf(r.Context(), repo, d, 5)
	if err != nil || len(parents) == 0 {
		return err
	}
	list := make([]string, len(parents))
	for i, p := range parents {
		list[i] = p.String()
	}
	return &Error{Code: ErrManifestReferenced,
		Message: fmt.Sprintf("manifest %s is listed by the index %s in %s: delete the index (or its tags) first", d, list[0], repo),
		Detail:  map[string]any{"digest": d.String(), "indexes": list}}
}

func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	if isDigestRef(rt.Ref) {
		d, err := parseDigest(rt.Ref)
		if err != nil {
			return err
		}
		if !reg.opts.DeleteReferenced {
			if err := reg.checkUnreferenced(r, t.Name, d); err != nil {
				return err
			}
		}
		a := Action{Kind: ActionDelete, Repository: rt.Name, Digest: d}
		err = metaErr(reg.meta.DeleteManifest(reg.prepare(r, a), t.Name, d), ErrManifestUnknown, rt.Name)
		reg.audit(r, a, err)
		if err != nil {
			return err
		}
	} else {
		if !ValidTag(rt.Ref) {
			return &Error{Code: ErrTagInvalid, Message: fmt.Sprintf("invalid tag %q", rt.Ref)}
		}
		a := Action{Kind: ActionDelete, Repository: rt.Name, Tag: rt.Ref}
		err := reg.meta.DeleteTag(reg.prepare(r, a), t.Name, rt.Ref)
		if errors.Is(err, metadata.ErrRepositoryNotFound) {
			err = metadata.ErrNotFound
		}
		err = metaErr(err, ErrManifestUnknown, rt.Name)
		reg.audit(r, a, err)
		if err != nil {
			return err
		}
	}
	if t.Forget != nil {
		t.Forget()
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}
