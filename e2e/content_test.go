package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// blob is a piece of content with its media type.
type blob struct {
	MediaType string
	Data      []byte
}

func (b blob) Digest() string { return sha256Digest(b.Data) }

func (b blob) Descriptor() descriptor {
	return descriptor{MediaType: b.MediaType, Digest: b.Digest(), Size: int64(len(b.Data))}
}

// descriptor, platform and manifestDoc are the parts of the OCI image spec the tests use.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *descriptor       `json:"config,omitempty"`
	Layers        []descriptor      `json:"layers,omitempty"`
	Manifests     []descriptor      `json:"manifests,omitempty"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func parseManifest(t testing.TB, data []byte) manifestDoc {
	t.Helper()
	var m manifestDoc
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("parse manifest: %v\n%s", err, data)
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// tarGz returns a gzipped tar of files and the digest of the uncompressed tar (its diff ID).
func tarGz(t testing.TB, files map[string][]byte) (gz []byte, diffID string) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), sha256Digest(raw.Bytes())
}

// untarGz returns the regular files of a gzipped tar.
func untarGz(t testing.TB, gz []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("layer is not gzip: %v", err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read layer tar: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "/")] = data
	}
}

// image is a single-platform OCI image with random layers.
type image struct {
	Config   blob
	Layers   []blob
	Manifest blob
	Platform platform
}

func newImage(t testing.TB, os, arch string, layers int) image {
	t.Helper()
	img := image{Platform: platform{OS: os, Architecture: arch}}
	var diffIDs []string
	var descs []descriptor
	for i := range layers {
		gz, diffID := tarGz(t, map[string][]byte{
			fmt.Sprintf("layer%d/%s-%s.bin", i, os, arch): randomBytes(t, 4096+i*1024),
		})
		l := blob{MediaType: mtOCILayerGzip, Data: gz}
		img.Layers = append(img.Layers, l)
		descs = append(descs, l.Descriptor())
		diffIDs = append(diffIDs, diffID)
	}
	img.Config = blob{MediaType: mtOCIConfig, Data: mustJSON(t, map[string]any{
		"architecture": arch,
		"os":           os,
		"config":       map[string]any{"Env": []string{"E2E_NONCE=" + sha256Digest(randomBytes(t, 16))}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})}
	cfg := img.Config.Descriptor()
	img.Manifest = blob{MediaType: mtOCIManifest, Data: mustJSON(t, manifestDoc{
		SchemaVersion: 2, MediaType: mtOCIManifest, Config: &cfg, Layers: descs,
	})}
	return img
}

// Blobs returns the manifest, config and layers.
func (img image) Blobs() []blob {
	return append([]blob{img.Manifest, img.Config}, img.Layers...)
}

// index is an OCI image index over images for several platforms.
type index struct {
	Manifest blob
	Images   []image
}

// newIndex builds one image per "os/arch" platform.
func newIndex(t testing.TB, platforms ...string) index {
	t.Helper()
	var ix index
	var descs []descriptor
	for i, p := range platforms {
		osName, arch, _ := strings.Cut(p, "/")
		img := newImage(t, osName, arch, 1+i%2)
		d := img.Manifest.Descriptor()
		d.Platform = &img.Platform
		descs = append(descs, d)
		ix.Images = append(ix.Images, img)
	}
	ix.Manifest = blob{MediaType: mtOCIIndex, Data: mustJSON(t, manifestDoc{
		SchemaVersion: 2, MediaType: mtOCIIndex, Manifests: descs,
	})}
	return ix
}

// writeLayout writes an OCI image layout holding the index under tag.
func (ix index) writeLayout(t testing.TB, dir, tag string) {
	t.Helper()
	blobs := []blob{ix.Manifest}
	for _, img := range ix.Images {
		blobs = append(blobs, img.Blobs()...)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		p := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(b.Digest(), "sha256:"))
		if err := os.WriteFile(p, b.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := ix.Manifest.Descriptor()
	root.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	top := mustJSON(t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIIndex, Manifests: []descriptor{root}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}
