package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/client"
)

// loopbackTransport is the base transport of test clients: it dials loopback only, with
// names in hosts ("name:port" → "127.0.0.1:port") mapped, so no test ever reaches the
// network, whatever the client would try.
func loopbackTransport(hosts map[string]string) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := hosts[addr]; ok {
				addr = to
			}
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("test dialer: refusing to dial %s (not loopback)", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 4,
	}
}

// fataler is what the fixture writers need of a test (examples have no testing.TB).
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// exampleTB stops an example on a fixture error.
type exampleTB struct{}

func (exampleTB) Helper()           {}
func (exampleTB) Fatal(args ...any) { log.Fatal(args...) }

// imageSpec describes a test image.
type imageSpec struct {
	platform client.Platform
	docker   bool     // Docker schema 2 media types instead of OCI
	layers   []layer  // layer contents, by seed and size
	extra    []string // annotations, in pairs
}

type layer struct {
	seed uint64
	size int
}

// writeImage writes an image (config and layers) into the layout and returns the
// descriptor of its manifest, with its platform.
func writeImage(t fataler, l *client.Layout, spec imageSpec) client.Descriptor {
	t.Helper()
	mtManifest, mtConfig, mtLayer := client.MediaTypeOCIManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip
	if spec.docker {
		mtManifest, mtConfig, mtLayer = client.MediaTypeDockerManifest,
			"application/vnd.docker.container.image.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"
	}
	var layers []client.Descriptor
	var diffIDs []digest.Digest
	for _, ly := range spec.layers {
		data := randomBytes(ly.size, ly.seed)
		d := writeBlob(t, l, mtLayer, data)
		layers = append(layers, d)
		diffIDs = append(diffIDs, d.Digest)
	}
	cfg := map[string]any{
		"architecture": spec.platform.Architecture, "os": spec.platform.OS,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	if spec.platform.Variant != "" {
		cfg["variant"] = spec.platform.Variant
	}
	cfgData, _ := json.Marshal(cfg)
	config := writeBlob(t, l, mtConfig, cfgData)
	m := map[string]any{"schemaVersion": 2, "mediaType": mtManifest, "config": config, "layers": layers}
	if len(spec.extra) > 0 {
		ann := map[string]string{}
		for i := 0; i+1 < len(spec.extra); i += 2 {
			ann[spec.extra[i]] = spec.extra[i+1]
		}
		m["annotations"] = ann
	}
	body, _ := json.Marshal(m)
	d := writeBlob(t, l, mtManifest, body)
	p := spec.platform
	d.Platform = &p
	return d
}

// writeIndex writes an index of the given manifests.
func writeIndex(t fataler, l *client.Layout, children ...client.Descriptor) client.Descriptor {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": client.MediaTypeOCIIndex, "manifests": children})
	return writeBlob(t, l, client.MediaTypeOCIIndex, body)
}

func writeBlob(t fataler, l *client.Layout, mediaType string, data []byte) client.Descriptor {
	t.Helper()
	d := client.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := l.WriteBlob(d, bytesReader(data)); err != nil {
		t.Fatal(err)
	}
	return d
}

func openLayout(t testing.TB) *client.Layout {
	t.Helper()
	l, err := client.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// recorder collects progress events.
type recorder struct {
	mu     sync.Mutex
	events []client.ProgressEvent
}

func (r *recorder) add(e client.ProgressEvent) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// final returns, per blob digest, the last kind reported (manifests excluded).
func (r *recorder) final() map[digest.Digest]client.ProgressKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[digest.Digest]client.ProgressKind{}
	for _, e := range r.events {
		if e.Kind != client.ManifestDone {
			out[e.Descriptor.Digest] = e.Kind
		}
	}
	return out
}

func (r *recorder) manifests() []digest.Digest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []digest.Digest
	for _, e := range r.events {
		if e.Kind == client.ManifestDone {
			out = append(out, e.Descriptor.Digest)
		}
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// checkProgress fails unless every blob done was reported with growing byte counts ending
// at its size.
func (r *recorder) checkProgress(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	last := map[digest.Digest]int64{}
	for _, e := range r.events {
		switch e.Kind {
		case client.BlobProgress:
			if e.Transferred < last[e.Descriptor.Digest] || e.Transferred > e.Descriptor.Size {
				t.Errorf("progress of %s went from %d to %d (size %d)", e.Descriptor.Digest, last[e.Descriptor.Digest], e.Transferred, e.Descriptor.Size)
			}
			last[e.Descriptor.Digest] = e.Transferred
		case client.BlobDone:
			if last[e.Descriptor.Digest] != e.Descriptor.Size || e.Transferred != e.Descriptor.Size {
				t.Errorf("blob %s done after %d progress bytes, reported %d, size %d", e.Descriptor.Digest, last[e.Descriptor.Digest], e.Transferred, e.Descriptor.Size)
			}
		}
	}
}

// expectNotFound fails unless err is an ErrNotFound.
func expectNotFound(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("%s: error %v, want ErrNotFound", what, err)
	}
}

// blobsOf returns the blob digests (config and layers) of the images under d in the layout.
func blobsOf(t testing.TB, l *client.Layout, d client.Descriptor) []digest.Digest {
	t.Helper()
	rc, err := l.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var v struct {
		Config    *client.Descriptor  `json:"config"`
		Layers    []client.Descriptor `json:"layers"`
		Manifests []client.Descriptor `json:"manifests"`
	}
	if err := json.NewDecoder(rc).Decode(&v); err != nil {
		t.Fatal(err)
	}
	out := []digest.Digest{d.Digest}
	if v.Config != nil {
		out = append(out, v.Config.Digest)
	}
	for _, ly := range v.Layers {
		out = append(out, ly.Digest)
	}
	for _, m := range v.Manifests {
		out = append(out, blobsOf(t, l, m)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
