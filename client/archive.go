package client

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of Docker images' parts.
const (
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeOCILayerZstd       = "application/vnd.oci.image.layer.v1.tar+zstd"
	annotationContainerdImgName = "io.containerd.image.name"
)

// Names of the metadata files of a docker archive.
const (
	archiveManifestFile = "manifest.json"
	archiveRepositories = "repositories"
)

// maxArchiveMetadata bounds the metadata files of an archive read into memory.
const maxArchiveMetadata = 16 << 20

// ArchiveImage is one image of a docker archive: its manifest in a Layout, and the names
// `docker load` gives it ("registry.example/app:v1", "alpine:latest").
type ArchiveImage struct {
	Descriptor Descriptor
	RepoTags   []string
}

// archiveEntry is one entry of a docker archive's manifest.json.
type archiveEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// IsImageConfig reports whether mt is the media type of a container image's configuration.
func IsImageConfig(mt string) bool {
	return mt == MediaTypeDockerConfig || mt == ocispec.MediaTypeImageConfig
}

// WriteDockerArchive writes images of l (image manifests, not indexes) as the tar that
// `docker save` writes and `docker load -i` reads: manifest.json (Config, RepoTags, Layers)
// beside an OCI image layout (oci-layout, index.json, blobs/ALG/HEX), the blobs shared by
// both, so engines old and new load it and skopeo reads it as docker-archive: or
// oci-archive:. Layers are written as stored (compressed), which `docker load` accepts.
// Every blob is verified while it is copied; on an error the tar is incomplete and the
// caller must discard it.
func WriteDockerArchive(w io.Writer, l *Layout, images ...ArchiveImage) error {
	if len(images) == 0 {
		return errors.New("docker archive: no image")
	}
	aw := &archiveWriter{tw: tar.NewWriter(w), l: l, written: map[digest.Digest]bool{}, dirs: map[string]bool{}}
	var entries []archiveEntry
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []Descriptor{}}
	for _, img := range images {
		m, err := l.readManifest(img.Descriptor)
		if err != nil {
			return err
		}
		if m.IsIndex() {
			return fmt.Errorf("docker archive: %s is an index; choose one platform's image", img.Descriptor.Digest)
		}
		im, err := m.Image()
		if err != nil {
			return err
		}
		if !IsImageConfig(im.Config.MediaType) {
			return fmt.Errorf("docker archive: %s is not a container image (config media type %q)", img.Descriptor.Digest, im.Config.MediaType)
		}
		entry := archiveEntry{RepoTags: img.RepoTags}
		if entry.Config, err = aw.blob(im.Config); err != nil {
			return err
		}
		for _, layer := range im.Layers {
			if nondistributable(layer) {
				return fmt.Errorf("docker archive: layer %s is non-distributable and was not pulled", layer.Digest)
			}
			name, err := aw.blob(layer)
			if err != nil {
				return err
			}
			entry.Layers = append(entry.Layers, name)
		}
		if _, err := aw.blob(m.Descriptor); err != nil {
			return err
		}
		entries = append(entries, entry)
		index.Manifests = append(index.Manifests, archiveIndexEntries(m.Descriptor, img.RepoTags)...)
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	manifestJSON, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	layoutJSON, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	for _, f := range []struct {
		name string
		data []byte
	}{{ocispec.ImageIndexFile, indexJSON}, {archiveManifestFile, manifestJSON}, {ocispec.ImageLayoutFile, layoutJSON}} {
		if err := aw.file(f.name, f.data); err != nil {
			return err
		}
	}
	return aw.tw.Close()
}

// archiveIndexEntries returns the index.json entries of one image: one per tag, annotated
// as containerd and Docker's image store expect, or one without a name.
func archiveIndexEntries(d Descriptor, repoTags []string) []Descriptor {
	base := Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	var out []Descriptor
	for _, t := range repoTags {
		ref, err := ParseReference(t)
		if err != nil || ref.Tag == "" {
			continue
		}
		e := base
		e.Annotations = map[string]string{
			annotationContainerdImgName: ref.Repo().String() + ":" + ref.Tag,
			ocispec.AnnotationRefName:   ref.Tag,
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		out = append(out, base)
	}
	return out
}

// archiveTime is the modification time of every file in a written archive, so the same
// image gives the same bytes.
var archiveTime = time.Unix(0, 0)

type archiveWriter struct {
	tw      *tar.Writer
	l       *Layout
	written map[digest.Digest]bool
	dirs    map[string]bool
}

// blob copies a blob of the layout into the tar, once, and returns its name there.
func (aw *archiveWriter) blob(d Descriptor) (string, error) {
	if err := d.Digest.Validate(); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidReference, err)
	}
	dir := ocispec.ImageBlobsDir + "/" + d.Digest.Algorithm().String()
	name := dir + "/" + d.Digest.Encoded()
	if aw.written[d.Digest] {
		return name, nil
	}
	for _, p := range []string{ocispec.ImageBlobsDir, dir} {
		if !aw.dirs[p] {
			aw.dirs[p] = true
			if err := aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: archiveTime}); err != nil {
				return "", err
			}
		}
	}
	rc, err := aw.l.OpenBlob(d)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if err := aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: d.Size, Mode: 0o644, ModTime: archiveTime}); err != nil {
		return "", err
	}
	if _, err := io.Copy(aw.tw, rc); err != nil {
		return "", fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	aw.written[d.Digest] = true
	return name, nil
}

func (aw *archiveWriter) file(name string, data []byte) error {
	if err := aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: archiveTime}); err != nil {
		return err
	}
	_, err := aw.tw.Write(data)
	return err
}

// ImportDockerArchive reads a docker archive from r (what `docker save` writes: the
// manifest.json format of every Docker version, or an OCI layout in the tar as newer ones
// add) into l. Blobs are hashed as they are read; the OCI layout's are checked against
// their names, and an archive in the manifest.json format gets a Docker schema 2 manifest
// made for each image (layers keep their compression). Each image is named in l by its
// first RepoTag, or by its manifest digest if it has none. The images are returned with
// all their tags.
func ImportDockerArchive(r io.Reader, l *Layout) ([]ArchiveImage, error) {
	staging, err := os.MkdirTemp(l.dir, ".import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	ar := &archiveReader{l: l, staging: staging, files: map[string]*stagedFile{}, links: map[string]string{}, meta: map[string][]byte{}}
	if err := ar.read(r); err != nil {
		return nil, err
	}
	_, hasIndex := ar.meta[ocispec.ImageIndexFile]
	_, hasLayout := ar.meta[ocispec.ImageLayoutFile]
	if hasIndex && hasLayout {
		return ar.importLayout()
	}
	if _, ok := ar.meta[archiveManifestFile]; ok {
		return ar.importManifestJSON()
	}
	return nil, errors.New("not a docker archive: it has neither manifest.json nor an OCI layout (oci-layout, index.json)")
}

// stagedFile is a regular file of the archive copied into the staging directory.
type stagedFile struct {
	path   string
	digest digest.Digest
	size   int64
	magic  []byte // the first bytes, to tell the compression
	placed bool   // moved into the layout's blobs
}

type archiveReader struct {
	l       *Layout
	staging string
	files   map[string]*stagedFile // by cleaned name in the archive
	links   map[string]string      // link name -> target name
	meta    map[string][]byte      // top-level metadata files
}

// cleanArchiveName reduces a name in a tar to a canonical relative path.
func cleanArchiveName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (ar *archiveReader) read(r io.Reader) error {
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		name := cleanArchiveName(h.Name)
		switch h.Typeflag {
		case tar.TypeReg:
			switch name {
			case archiveManifestFile, ocispec.ImageIndexFile, ocispec.ImageLayoutFile, archiveRepositories:
				data, err := io.ReadAll(io.LimitReader(tr, maxArchiveMetadata+1))
				if err != nil {
					return fmt.Errorf("reading %s in the archive: %w", name, err)
				}
				if len(data) > maxArchiveMetadata {
					return fmt.Errorf("%s in the archive is larger than %d bytes", name, maxArchiveMetadata)
				}
				ar.meta[name] = data
				continue
			}
			sf, err := ar.stage(tr, n, name)
			if err != nil {
				return err
			}
			ar.files[name] = sf
		case tar.TypeSymlink:
			ar.links[name] = cleanArchiveName(path.Join(path.Dir(name), h.Linkname))
		case tar.TypeLink:
			ar.links[name] = cleanArchiveName(h.Linkname)
		}
	}
}

// stage copies one file into the staging directory, hashing it with the algorithm its
// name gives (blobs/ALG/HEX) or SHA-256.
func (ar *archiveReader) stage(r io.Reader, n int, name string) (*stagedFile, error) {
	alg := digest.SHA256
	if parts := strings.Split(name, "/"); len(parts) == 3 && parts[0] == ocispec.ImageBlobsDir {
		if a := digest.Algorithm(parts[1]); a.Available() {
			alg = a
		}
	}
	f, err := os.Create(filepath.Join(ar.staging, fmt.Sprint(n)))
	if err != nil {
		return nil, err
	}
	h := alg.Hash()
	var head bytes.Buffer
	size, err := io.Copy(io.MultiWriter(f, h, &limitedBuffer{b: &head, n: 4}), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s in the archive: %w", name, err)
	}
	return &stagedFile{path: f.Name(), digest: digest.NewDigest(alg, h), size: size, magic: head.Bytes()}, nil
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if rest := w.n - w.b.Len(); rest > 0 {
		w.b.Write(p[:min(rest, len(p))])
	}
	return len(p), nil
}

// file returns the staged file of a name, following links.
func (ar *archiveReader) file(name string) (*stagedFile, error) {
	name = cleanArchiveName(name)
	for range 16 {
		if f, ok := ar.files[name]; ok {
			return f, nil
		}
		target, ok := ar.links[name]
		if !ok {
			break
		}
		name = target
	}
	return nil, fmt.Errorf("%w: %s is not in the archive", ErrNotFound, name)
}

// place moves a staged file into the layout's blobs (once).
func (ar *archiveReader) place(f *stagedFile) error {
	if f.placed || ar.l.HasBlob(f.digest) {
		f.placed = true
		return nil
	}
	p, err := ar.l.blobPath(f.digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Rename(f.path, p); err != nil {
		return err
	}
	f.placed = true
	return nil
}

// importLayout takes the OCI layout in the archive.
func (ar *archiveReader) importLayout() ([]ArchiveImage, error) {
	var v ocispec.ImageLayout
	if err := json.Unmarshal(ar.meta[ocispec.ImageLayoutFile], &v); err != nil || v.Version == "" {
		return nil, errors.New("the archive's oci-layout is invalid")
	}
	var ix ocispec.Index
	if err := json.Unmarshal(ar.meta[ocispec.ImageIndexFile], &ix); err != nil {
		return nil, fmt.Errorf("the archive's index.json: %v", err)
	}
	for name, f := range ar.files {
		parts := strings.Split(name, "/")
		if len(parts) != 3 || parts[0] != ocispec.ImageBlobsDir {
			continue
		}
		want := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
		if want != f.digest {
			return nil, fmt.Errorf("%w: %s in the archive has digest %s", ErrDigestMismatch, name, f.digest)
		}
		if err := ar.place(f); err != nil {
			return nil, err
		}
	}
	var images []ArchiveImage
	byDigest := map[digest.Digest]int{}
	for _, d := range ix.Manifests {
		if err := ar.checkComplete(d, 0); err != nil {
			return nil, err
		}
		i, ok := byDigest[d.Digest]
		if !ok {
			i = len(images)
			byDigest[d.Digest] = i
			images = append(images, ArchiveImage{Descriptor: Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}})
		}
		// A name is a repository and tag in containerd's annotation; the OCI one is often
		// a tag alone, which names no image for `docker load`.
		name := d.Annotations[annotationContainerdImgName]
		if name == "" && strings.ContainsAny(d.Annotations[ocispec.AnnotationRefName], "/:") {
			name = d.Annotations[ocispec.AnnotationRefName]
		}
		if ref, err := ParseReference(name); err == nil && name != "" {
			images[i].RepoTags = append(images[i].RepoTags, ref.Familiar())
		}
	}
	return ar.tagAll(images)
}

// checkComplete verifies that the layout holds the manifest d and all it references.
func (ar *archiveReader) checkComplete(d Descriptor, depth int) error {
	if depth > 4 {
		return errors.New("the archive's indexes nest too deep")
	}
	m, err := ar.l.readManifest(d)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.IsIndex() {
		ix, err := m.Index()
		if err != nil {
			return err
		}
		for _, c := range ix.Manifests {
			if err := ar.checkComplete(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	im, err := m.Image()
	if err != nil {
		return err
	}
	for _, b := range append([]Descriptor{im.Config}, im.Layers...) {
		if nondistributable(b) {
			continue
		}
		if !ar.l.HasBlob(b.Digest) {
			return fmt.Errorf("%w: blob %s of image %s is not in the archive", ErrNotFound, b.Digest, d.Digest)
		}
	}
	return nil
}

// importManifestJSON builds a Docker schema 2 manifest for each entry of manifest.json.
func (ar *archiveReader) importManifestJSON() ([]ArchiveImage, error) {
	var entries []archiveEntry
	if err := json.Unmarshal(ar.meta[archiveManifestFile], &entries); err != nil {
		return nil, fmt.Errorf("the archive's manifest.json: %v", err)
	}
	if len(entries) == 0 {
		return nil, errors.New("the archive's manifest.json lists no image")
	}
	var images []ArchiveImage
	for i, e := range entries {
		cfg, err := ar.file(e.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest.json entry %d: config: %w", i, err)
		}
		if err := ar.place(cfg); err != nil {
			return nil, err
		}
		im := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: MediaTypeDockerManifest,
			Config:    Descriptor{MediaType: MediaTypeDockerConfig, Digest: cfg.digest, Size: cfg.size},
			Layers:    []Descriptor{},
		}
		for _, name := range e.Layers {
			f, err := ar.file(name)
			if err != nil {
				return nil, fmt.Errorf("manifest.json entry %d: layer: %w", i, err)
			}
			if err := ar.place(f); err != nil {
				return nil, err
			}
			im.Layers = append(im.Layers, Descriptor{MediaType: layerMediaType(f.magic), Digest: f.digest, Size: f.size})
		}
		body, err := json.Marshal(im)
		if err != nil {
			return nil, err
		}
		m := NewManifest(MediaTypeDockerManifest, body)
		if !ar.l.HasBlob(m.Descriptor.Digest) {
			if err := ar.l.WriteBlob(m.Descriptor, bytes.NewReader(body)); err != nil {
				return nil, err
			}
		}
		images = append(images, ArchiveImage{Descriptor: m.Descriptor, RepoTags: e.RepoTags})
	}
	return ar.tagAll(images)
}

// tagAll names each image in the layout by its first tag, or its digest.
func (ar *archiveReader) tagAll(images []ArchiveImage) ([]ArchiveImage, error) {
	for _, img := range images {
		name := img.Descriptor.Digest.String()
		if len(img.RepoTags) > 0 {
			name = img.RepoTags[0]
		}
		if err := ar.l.Tag(name, img.Descriptor); err != nil {
			return nil, err
		}
	}
	return images, nil
}

// layerMediaType tells a layer's media type by its first bytes: gzip, zstd, or a plain tar.
func layerMediaType(magic []byte) string {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return MediaTypeDockerLayerGzip
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return mediaTypeOCILayerZstd
	}
	return MediaTypeDockerLayerTar
}
