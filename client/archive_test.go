package client

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archiveFixture writes an image (config and two gzip layers, the second twice) into a new
// layout and returns the layout and the manifest descriptor.
func archiveFixture(t *testing.T) (*Layout, Descriptor, [][]byte) {
	t.Helper()
	l, err := OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(mt string, data []byte) Descriptor {
		d := Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if !l.HasBlob(d.Digest) {
			if err := l.WriteBlob(d, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	layers := [][]byte{append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte("one"), 100)...), append([]byte{0x1f, 0x8b}, []byte("two")...)}
	cfg := put(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	l1 := put(ocispec.MediaTypeImageLayerGzip, layers[0])
	l2 := put(ocispec.MediaTypeImageLayerGzip, layers[1])
	body, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest, Config: cfg, Layers: []Descriptor{l1, l2, l2}})
	m := put(MediaTypeOCIManifest, body)
	if err := l.Tag("v1", m); err != nil {
		t.Fatal(err)
	}
	return l, m, layers
}

// untar returns the regular files of a tar by name.
func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = b
		}
	}
}

func TestDockerArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	l, m, layers := archiveFixture(t)
	var buf bytes.Buffer
	if err := WriteDockerArchive(&buf, l, ArchiveImage{Descriptor: m, RepoTags: []string{"registry.example/app:v1"}}); err != nil {
		t.Fatal(err)
	}
	files := untar(t, buf.Bytes())

	var entries []archiveEntry
	if err := json.Unmarshal(files["manifest.json"], &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || len(entries[0].Layers) != 3 || entries[0].RepoTags[0] != "registry.example/app:v1" {
		t.Fatalf("manifest.json: %s", files["manifest.json"])
	}
	if !bytes.Equal(files[entries[0].Layers[0]], layers[0]) || !bytes.Equal(files[entries[0].Layers[2]], layers[1]) {
		t.Error("manifest.json's layers are not the image's")
	}
	var ix ocispec.Index
	if err := json.Unmarshal(files["index.json"], &ix); err != nil {
		t.Fatal(err)
	}
	if len(ix.Manifests) != 1 || ix.Manifests[0].Digest != m.Digest ||
		ix.Manifests[0].Annotations[annotationContainerdImgName] != "registry.example/app:v1" ||
		ix.Manifests[0].Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Errorf("index.json: %s", files["index.json"])
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Error("no oci-layout")
	}

	// Imported, it is the same image under the same digest.
	l2, err := OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	images, err := ImportDockerArchive(bytes.NewReader(buf.Bytes()), l2)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].Descriptor.Digest != m.Digest || images[0].RepoTags[0] != "registry.example/app:v1" {
		t.Fatalf("imported %+v", images)
	}
	d, err := l2.Resolve("registry.example/app:v1")
	if err != nil || d.Digest != m.Digest {
		t.Fatalf("resolve: %v, %v", d, err)
	}
	if left, _ := filepath.Glob(filepath.Join(l2.Dir(), ".import-*")); len(left) > 0 {
		t.Errorf("import left %v", left)
	}
}

// TestImportLegacyArchive reads the format of `docker save` before the OCI layout: layer
// directories, a symlinked duplicate layer, uncompressed layers.
func TestImportLegacyArchive(t *testing.T) {
	t.Parallel()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:x","sha256:y"]}}`)
	plain := []byte(strings.Repeat("plain tar data", 50))
	gz := append([]byte{0x1f, 0x8b, 8}, []byte("gzipped")...)
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	add(&tar.Header{Name: "aaa/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "aaa/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644}, plain)
	add(&tar.Header{Name: "bbb/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644}, gz)
	add(&tar.Header{Name: "ccc/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../aaa/layer.tar"}, nil)
	add(&tar.Header{Name: cfgName, Typeflag: tar.TypeReg, Mode: 0o644}, cfg)
	mj, _ := json.Marshal([]archiveEntry{{Config: cfgName, RepoTags: []string{"app:v1"}, Layers: []string{"aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"}}})
	add(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644}, mj)
	tw.Close()

	l, err := OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	images, err := ImportDockerArchive(&buf, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].RepoTags[0] != "app:v1" {
		t.Fatalf("imported %+v", images)
	}
	m, err := l.readManifest(images[0].Descriptor)
	if err != nil {
		t.Fatal(err)
	}
	im, err := m.Image()
	if err != nil {
		t.Fatal(err)
	}
	if m.Descriptor.MediaType != MediaTypeDockerManifest || im.Config.Digest != digest.FromBytes(cfg) || im.Config.MediaType != MediaTypeDockerConfig {
		t.Errorf("manifest %s", m.Body)
	}
	wantLayers := []Descriptor{
		{MediaType: MediaTypeDockerLayerTar, Digest: digest.FromBytes(plain), Size: int64(len(plain))},
		{MediaType: MediaTypeDockerLayerGzip, Digest: digest.FromBytes(gz), Size: int64(len(gz))},
		{MediaType: MediaTypeDockerLayerTar, Digest: digest.FromBytes(plain), Size: int64(len(plain))},
	}
	if len(im.Layers) != 3 {
		t.Fatalf("layers %+v", im.Layers)
	}
	for i, w := range wantLayers {
		if g := im.Layers[i]; g.MediaType != w.MediaType || g.Digest != w.Digest || g.Size != w.Size {
			t.Errorf("layer %d = %+v, want %+v", i, g, w)
		}
		if !l.HasBlob(w.Digest) {
			t.Errorf("layer %d not in the layout", i)
		}
	}
}

func TestImportArchiveErrors(t *testing.T) {
	t.Parallel()
	l, m, _ := archiveFixture(t)
	var good bytes.Buffer
	if err := WriteDockerArchive(&good, l, ArchiveImage{Descriptor: m}); err != nil {
		t.Fatal(err)
	}
	// Rewrite the archive with one blob's content changed (same name).
	corrupt := func(drop bool) []byte {
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		tr := tar.NewReader(bytes.NewReader(good.Bytes()))
		changed := false
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			if !changed && strings.HasPrefix(h.Name, "blobs/sha256/") && h.Typeflag == tar.TypeReg && int64(len(data)) > 100 {
				changed = true
				if drop {
					continue
				}
				data[0] ^= 0xff
			}
			tw.WriteHeader(h)
			tw.Write(data)
		}
		tw.Close()
		return out.Bytes()
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"corrupt blob", corrupt(false), ErrDigestMismatch, "has digest"},
		{"missing blob", corrupt(true), ErrNotFound, "not in the archive"},
		{"not a tar", []byte("hello"), nil, "reading the archive"},
		{"empty tar", func() []byte { var b bytes.Buffer; tar.NewWriter(&b).Close(); return b.Bytes() }(), nil, "not a docker archive"},
	} {
		dst, err := OpenLayout(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_, err = ImportDockerArchive(bytes.NewReader(tc.data), dst)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %v with %q", tc.name, err, tc.want, tc.msg)
		}
		if ms, _ := dst.Manifests(); len(ms) != 0 {
			t.Errorf("%s: the failed import named %v", tc.name, ms)
		}
	}
}

func TestWriteArchiveErrors(t *testing.T) {
	t.Parallel()
	l, m, _ := archiveFixture(t)
	// A layer whose bytes changed on disk fails the write.
	im, _ := func() (*ocispec.Manifest, error) { mm, _ := l.readManifest(m); return mm.Image() }()
	p, _ := l.blobPath(im.Layers[0].Digest)
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), int(im.Layers[0].Size)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDockerArchive(io.Discard, l, ArchiveImage{Descriptor: m}); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("write with a corrupt layer: %v, want a digest mismatch", err)
	}
	if err := WriteDockerArchive(io.Discard, l); err == nil {
		t.Error("an archive of no image was written")
	}
}
