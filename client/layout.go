package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layout is an OCI image layout directory (oci-layout, index.json, blobs/ALG/HEX): the local
// side of Pull and Push. A blob appears in it only once its bytes have been verified, and a
// name in index.json only once everything it references is there. A Layout is safe for
// concurrent use within one process.
type Layout struct {
	dir string
	mu  sync.Mutex // index.json
}

// OpenLayout opens the layout in dir, creating an empty one if dir has none.
func OpenLayout(dir string) (*Layout, error) {
	l := &Layout{dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, ocispec.ImageBlobsDir), 0o755); err != nil {
		return nil, err
	}
	marker := filepath.Join(dir, ocispec.ImageLayoutFile)
	data, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := writeFileAtomic(marker, b); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		var v ocispec.ImageLayout
		if err := json.Unmarshal(data, &v); err != nil || v.Version == "" {
			return nil, fmt.Errorf("%s: not an OCI image layout", marker)
		}
	}
	if _, err := os.Stat(l.indexPath()); errors.Is(err, fs.ErrNotExist) {
		if err := l.writeIndex(&ocispec.Index{}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Dir returns the layout's directory.
func (l *Layout) Dir() string { return l.dir }

func (l *Layout) indexPath() string { return filepath.Join(l.dir, ocispec.ImageIndexFile) }

func (l *Layout) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidReference, err)
	}
	return filepath.Join(l.dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), nil
}

// HasBlob reports whether the layout holds blob d.
func (l *Layout) HasBlob(d digest.Digest) bool {
	p, err := l.blobPath(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// OpenBlob opens blob desc for reading, verified as GetBlob's reader is.
func (l *Layout) OpenBlob(desc Descriptor) (io.ReadCloser, error) {
	p, err := l.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s in layout %s", ErrNotFound, desc.Digest, l.dir)
	}
	if err != nil {
		return nil, err
	}
	size := desc.Size
	if size <= 0 {
		size = -1
	}
	return newVerifier(f, desc.Digest, size, nil), nil
}

// WriteBlob stores blob desc read from r. The bytes go to a temporary file and are moved in
// place only if they match desc's size and digest; otherwise nothing is stored and the
// error matches ErrDigestMismatch.
func (l *Layout) WriteBlob(desc Descriptor, r io.Reader) error {
	p, err := l.blobPath(desc.Digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+desc.Digest.Encoded()+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	size := desc.Size
	if size < 0 {
		size = -1
	}
	v := newVerifier(io.NopCloser(r), desc.Digest, size, nil)
	if _, err := io.Copy(tmp, v); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Manifests returns the entries of index.json.
func (l *Layout) Manifests() ([]Descriptor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ix, err := l.readIndex()
	if err != nil {
		return nil, err
	}
	return ix.Manifests, nil
}

// Resolve returns the index.json entry named name (annotation
// org.opencontainers.image.ref.name), or with name "" the only entry.
func (l *Layout) Resolve(name string) (Descriptor, error) {
	ms, err := l.Manifests()
	if err != nil {
		return Descriptor{}, err
	}
	if name == "" {
		if len(ms) != 1 {
			return Descriptor{}, fmt.Errorf("layout %s holds %d images: name one", l.dir, len(ms))
		}
		return ms[0], nil
	}
	for _, d := range ms {
		if d.Annotations[ocispec.AnnotationRefName] == name {
			return d, nil
		}
	}
	return Descriptor{}, fmt.Errorf("%w: %q in layout %s", ErrNotFound, name, l.dir)
}

// Tag names desc in index.json, replacing an entry of the same name.
func (l *Layout) Tag(name string, desc Descriptor) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ix, err := l.readIndex()
	if err != nil {
		return err
	}
	entry := Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, ArtifactType: desc.ArtifactType,
		Platform: desc.Platform, Annotations: map[string]string{ocispec.AnnotationRefName: name}}
	kept := ix.Manifests[:0]
	for _, d := range ix.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] != name {
			kept = append(kept, d)
		}
	}
	ix.Manifests = append(kept, entry)
	return l.writeIndex(ix)
}

func (l *Layout) readIndex() (*ocispec.Index, error) {
	data, err := os.ReadFile(l.indexPath())
	if err != nil {
		return nil, err
	}
	var ix ocispec.Index
	if err := json.Unmarshal(data, &ix); err != nil {
		return nil, fmt.Errorf("%s: %v", l.indexPath(), err)
	}
	return &ix, nil
}

func (l *Layout) writeIndex(ix *ocispec.Index) error {
	ix.SchemaVersion = 2
	ix.MediaType = MediaTypeOCIIndex
	if ix.Manifests == nil {
		ix.Manifests = []Descriptor{}
	}
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(l.indexPath(), data)
}

// readManifest reads a manifest blob.
func (l *Layout) readManifest(d Descriptor) (*Manifest, error) {
	rc, err := l.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is larger than %d bytes", d.Digest, MaxManifestSize)
	}
	m := NewManifest(d.MediaType, body)
	if m.Descriptor.Digest != d.Digest {
		return nil, fmt.Errorf("%w: manifest %s in layout %s", ErrDigestMismatch, d.Digest, l.dir)
	}
	return m, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// layoutSource reads a copy's source from a layout.
type layoutSource struct {
	l    *Layout
	name string
}

func (s *layoutSource) root(context.Context) (*Manifest, error) {
	d, err := s.l.Resolve(s.name)
	if err != nil {
		return nil, err
	}
	return s.l.readManifest(d)
}

func (s *layoutSource) manifest(_ context.Context, d Descriptor) (*Manifest, error) {
	return s.l.readManifest(d)
}

func (s *layoutSource) blob(_ context.Context, d Descriptor, progress func(int64)) (io.ReadCloser, error) {
	rc, err := s.l.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		return struct {
			io.Reader
			io.Closer
		}{&countingReader{r: rc, f: progress}, rc}, nil
	}
	return rc, nil
}

func (s *layoutSource) repository() (Reference, bool) { return Reference{}, false }

// layoutTarget writes a copy's destination into a layout.
type layoutTarget struct {
	l    *Layout
	name string
}

func (t *layoutTarget) manifestExists(_ context.Context, d Descriptor) (bool, error) {
	// A manifest blob may be there from a pull that stopped half way, its blobs not: only
	// a named root is known to be whole, so children are always walked.
	return false, nil
}

func (t *layoutTarget) blobExists(_ context.Context, d Descriptor) (bool, error) {
	return t.l.HasBlob(d.Digest), nil
}

func (t *layoutTarget) pushBlob(_ context.Context, d Descriptor, _ *Reference, open func() (io.ReadCloser, error)) (ProgressKind, error) {
	rc, err := open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return BlobDone, t.l.WriteBlob(d, rc)
}

// allowsNondistributable is false: a layout keeps what a registry without permission has,
// so foreign layers stay with their URLs.
func (t *layoutTarget) allowsNondistributable(context.Context) bool { return false }

func (t *layoutTarget) pushManifest(_ context.Context, m *Manifest, root bool) error {
	if !t.l.HasBlob(m.Descriptor.Digest) {
		if err := t.l.WriteBlob(m.Descriptor, bytesReader(m.Body)); err != nil {
			return err
		}
	}
	if root {
		return t.l.Tag(t.name, m.Descriptor)
	}
	return nil
}
