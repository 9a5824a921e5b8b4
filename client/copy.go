package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/containerd/platforms"
)

// CopyOptions shape Copy, Pull and Push.
type CopyOptions struct {
	// Platforms, when set, keeps only the children of an index that match one of them; the
	// index written then lists just those (and so has another digest than the source's).
	// An image manifest is copied whatever its platform.
	Platforms []Platform
	// Progress receives an event per blob and manifest.
	Progress ProgressFunc
}

// ParsePlatform parses a platform specifier as containerd does ("linux/amd64",
// "linux/arm64/v8", "arm64", "linux", "linux/x86_64") and returns it normalised: x86_64 is
// amd64, aarch64 is arm64, arm64/v8 is arm64; a missing OS is linux, a missing architecture
// this machine's.
func ParsePlatform(s string) (Platform, error) {
	p, err := platforms.Parse(s)
	if err != nil {
		return Platform{}, fmt.Errorf("platform %q: want os/arch[/variant] (%v)", s, err)
	}
	return platforms.Normalize(p), nil
}

// PlatformMatches reports whether p (an index entry's platform) is what want asks for, both
// normalised as containerd does (linux/arm64/v8 is linux/arm64, x86_64 is amd64): same OS
// and architecture, and the same variant and OS version when want names them.
func PlatformMatches(want Platform, p *Platform) bool {
	if p == nil {
		return false
	}
	w, got := platforms.Normalize(want), platforms.Normalize(*p)
	return got.OS == w.OS && got.Architecture == w.Architecture &&
		(w.Variant == "" || w.Variant == got.Variant) &&
		(w.OSVersion == "" || w.OSVersion == got.OSVersion)
}

// PlatformString renders a platform as "os/arch[/variant]".
func PlatformString(p Platform) string { return platforms.Format(p) }

// source is where a copy reads from: a registry repository or a layout.
type source interface {
	root(ctx context.Context) (*Manifest, error)
	manifest(ctx context.Context, d Descriptor) (*Manifest, error)
	// blob opens a verifying reader of the blob.
	blob(ctx context.Context, d Descriptor, progress func(int64)) (io.ReadCloser, error)
	// repository returns the registry repository, for mounts; ok is false for a layout.
	repository() (Reference, bool)
}

// target is where a copy writes to.
type target interface {
	manifestExists(ctx context.Context, d Descriptor) (bool, error)
	blobExists(ctx context.Context, d Descriptor) (bool, error)
	// pushBlob writes the blob, mounting it from `from` when the target can; open is
	// called only if the data must be sent. It reports BlobMounted or BlobDone.
	pushBlob(ctx context.Context, d Descriptor, from *Reference, open func() (io.ReadCloser, error)) (ProgressKind, error)
	// pushManifest writes a manifest; root ones under the target's tag.
	pushManifest(ctx context.Context, m *Manifest, root bool) error
	// allowsNondistributable reports whether non-distributable (foreign) layers are copied
	// here rather than left to their URLs.
	allowsNondistributable(ctx context.Context) bool
}

// Copy copies the image or index src names to dst, between registries or within one,
// without a local copy: blobs stream from the source to the destination (and are verified
// on the way), same-registry blobs are mounted, blobs and manifests the destination has are
// skipped, an index's children are written before the index. dst gets src's tag unless it
// names its own (a reference without tag and digest gets "latest" when parsed).
func (c *Client) Copy(ctx context.Context, src, dst Reference, opts CopyOptions) (Descriptor, error) {
	d, err := c.copy(ctx, &regSource{c: c, ref: src}, &regTarget{c: c, ref: dst}, opts)
	return d, wrap("copy", src.String()+" to "+dst.String(), err)
}

// Pull copies the image or index ref names into the layout, under the name ref.String().
func (c *Client) Pull(ctx context.Context, ref Reference, l *Layout, opts CopyOptions) (Descriptor, error) {
	d, err := c.copy(ctx, &regSource{c: c, ref: ref}, &layoutTarget{l: l, name: ref.String()}, opts)
	return d, wrap("pull", ref.String(), err)
}

// Push copies the image or index stored in the layout under name ("" when the layout holds
// only one) to ref.
func (c *Client) Push(ctx context.Context, l *Layout, name string, ref Reference, opts CopyOptions) (Descriptor, error) {
	d, err := c.copy(ctx, &layoutSource{l: l, name: name}, &regTarget{c: c, ref: ref}, opts)
	return d, wrap("push", ref.String(), err)
}

type copier struct {
	src      source
	dst      target
	progress ProgressFunc
	sem      chan struct{}
}

func (c *Client) copy(ctx context.Context, src source, dst target, opts CopyOptions) (Descriptor, error) {
	root, err := src.root(ctx)
	if err != nil {
		return Descriptor{}, err
	}
	cp := &copier{src: src, dst: dst, progress: opts.Progress, sem: make(chan struct{}, c.concurrency)}
	var children []Descriptor
	rewritten := false
	if root.IsIndex() {
		ix, err := root.Index()
		if err != nil {
			return Descriptor{}, err
		}
		children = ix.Manifests
		if len(opts.Platforms) > 0 {
			children = filterPlatforms(children, opts.Platforms)
			if len(children) == 0 {
				return Descriptor{}, fmt.Errorf("%w: no manifest in index %s for %s", ErrNotFound, root.Descriptor.Digest, platformList(opts.Platforms))
			}
			if len(children) != len(ix.Manifests) {
				if root, err = rewriteIndex(root, children); err != nil {
					return Descriptor{}, err
				}
				rewritten = true
			}
		}
	}
	if err := cp.copyManifest(ctx, root, children, true, rewritten); err != nil {
		return Descriptor{}, err
	}
	return root.Descriptor, nil
}

func filterPlatforms(ds []Descriptor, want []Platform) []Descriptor {
	var out []Descriptor
	for _, d := range ds {
		for _, w := range want {
			if PlatformMatches(w, d.Platform) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func platformList(ps []Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s[i] += "/" + p.Variant
		}
	}
	return strings.Join(s, ", ")
}

// rewriteIndex returns the index with only the given children, every other field kept.
func rewriteIndex(m *Manifest, children []Descriptor) (*Manifest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(m.Body, &raw); err != nil {
		return nil, err
	}
	list, err := json.Marshal(children)
	if err != nil {
		return nil, err
	}
	raw["manifests"] = list
	body, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return NewManifest(m.Descriptor.MediaType, body), nil
}

// copyManifest copies m and everything it references. children are an index's entries
// (possibly filtered).
func (cp *copier) copyManifest(ctx context.Context, m *Manifest, children []Descriptor, root, rewritten bool) error {
	if !rewritten {
		exists, err := cp.dst.manifestExists(ctx, m.Descriptor)
		if err != nil {
			return err
		}
		if exists {
			if root {
				// Written already; the tag may still need to point at it.
				if err := cp.dst.pushManifest(ctx, m, true); err != nil {
					return err
				}
			}
			cp.progress.emit(ManifestDone, m.Descriptor, m.Descriptor.Size)
			return nil
		}
	}
	if m.IsIndex() {
		if children == nil {
			ix, err := m.Index()
			if err != nil {
				return err
			}
			children = ix.Manifests
		}
		for _, d := range children {
			child, err := cp.src.manifest(ctx, d)
			if err != nil {
				return err
			}
			if err := cp.copyManifest(ctx, child, nil, false, false); err != nil {
				return err
			}
		}
	} else if err := cp.copyBlobs(ctx, m); err != nil {
		return err
	}
	if err := cp.dst.pushManifest(ctx, m, root); err != nil {
		return err
	}
	cp.progress.emit(ManifestDone, m.Descriptor, m.Descriptor.Size)
	return nil
}

// copyBlobs copies an image's config and layers, several at once.
func (cp *copier) copyBlobs(ctx context.Context, m *Manifest) error {
	im, err := m.Image()
	if err != nil {
		return err
	}
	blobs := []Descriptor{im.Config}
	seen := map[string]bool{im.Config.Digest.String(): true}
	foreign := map[string]bool{}
	allowForeign := cp.dst.allowsNondistributable(ctx)
	for _, l := range im.Layers {
		if seen[l.Digest.String()] {
			continue
		}
		if nondistributable(l) {
			if !allowForeign {
				continue
			}
			foreign[l.Digest.String()] = true
		}
		seen[l.Digest.String()] = true
		blobs = append(blobs, l)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, b := range blobs {
		acquired := false
		select {
		case cp.sem <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			if acquired {
				<-cp.sem
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-cp.sem }()
			if err := cp.copyBlob(ctx, b, foreign[b.Digest.String()]); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// nondistributable reports whether a layer is non-distributable (a foreign layer, fetched
// from its URLs by whoever runs the image): copied only to a registry that allows it.
func nondistributable(d Descriptor) bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, "nondistributable") ||
		strings.Contains(d.MediaType, "foreign")
}

// copyBlob copies one blob. An optional one (a foreign layer) that the source does not have
// is left out, as it would be without permission: its URLs still locate it.
func (cp *copier) copyBlob(ctx context.Context, d Descriptor, optional bool) error {
	exists, err := cp.dst.blobExists(ctx, d)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if exists {
		cp.progress.emit(BlobExists, d, d.Size)
		return nil
	}
	var from *Reference
	if r, ok := cp.src.repository(); ok {
		from = &r
	}
	var tracked *trackingReader
	var openErr error
	open := func() (io.ReadCloser, error) {
		rc, err := cp.src.blob(ctx, d, func(n int64) { cp.progress.emit(BlobProgress, d, n) })
		if err != nil {
			openErr = err
			return nil, err
		}
		cp.progress.emit(BlobStarted, d, 0)
		tracked = &trackingReader{rc: rc}
		return tracked, nil
	}
	kind, err := cp.dst.pushBlob(ctx, d, from, open)
	if err != nil && optional && openErr != nil && errors.Is(openErr, ErrNotFound) {
		return nil
	}
	if err != nil {
		// A source that failed (a digest mismatch) is the cause, whatever the upload made
		// of it.
		if tracked != nil && tracked.err != nil && !errors.Is(tracked.err, io.EOF) {
			err = tracked.err
		}
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	cp.progress.emit(kind, d, d.Size)
	return nil
}

// trackingReader remembers the error its reader returned.
type trackingReader struct {
	rc  io.ReadCloser
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

func (t *trackingReader) Close() error { return t.rc.Close() }

// regSource reads from a registry repository.
type regSource struct {
	c   *Client
	ref Reference
}

func (s *regSource) root(ctx context.Context) (*Manifest, error) { return s.c.GetManifest(ctx, s.ref) }

func (s *regSource) manifest(ctx context.Context, d Descriptor) (*Manifest, error) {
	m, err := s.c.GetManifest(ctx, s.ref.Repo().WithDigest(d.Digest))
	if err != nil {
		return nil, err
	}
	if d.MediaType != "" && m.Descriptor.MediaType != d.MediaType {
		m.Descriptor.MediaType = d.MediaType
	}
	return m, nil
}

func (s *regSource) blob(ctx context.Context, d Descriptor, progress func(int64)) (io.ReadCloser, error) {
	return s.c.getBlob(ctx, s.ref.Repo(), d, progress)
}

func (s *regSource) repository() (Reference, bool) { return s.ref.Repo(), true }

// regTarget writes to a registry repository.
type regTarget struct {
	c   *Client
	ref Reference
}

func (t *regTarget) manifestExists(ctx context.Context, d Descriptor) (bool, error) {
	// Asked of the registry itself: a mirror having it says nothing about the destination.
	err := t.c.do(ctx, t.ref.Registry, forPush, func(ep *endpoint) error {
		_, err := t.c.headManifest(ctx, ep, t.ref.Repo().WithDigest(d.Digest))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (t *regTarget) blobExists(ctx context.Context, d Descriptor) (bool, error) {
	var ok bool
	err := t.c.do(ctx, t.ref.Registry, forPush, func(ep *endpoint) error {
		var err error
		ok, err = t.c.blobExists(ctx, ep, t.ref.Repo(), d.Digest)
		return err
	})
	return ok, err
}

func (t *regTarget) pushBlob(ctx context.Context, d Descriptor, from *Reference, open func() (io.ReadCloser, error)) (ProgressKind, error) {
	kind := BlobDone
	err := t.c.do(ctx, t.ref.Registry, forPush, func(ep *endpoint) error {
		var u *Upload
		if from != nil && strings.EqualFold(from.Registry, t.ref.Registry) && from.Repository != t.ref.Repository {
			var mounted bool
			var err error
			u, mounted, err = t.c.mount(ctx, ep, t.ref.Repo(), from.Repository, d.Digest)
			if err != nil {
				return err
			}
			if mounted {
				kind = BlobMounted
				return nil
			}
		}
		rc, err := open()
		if err != nil {
			if u != nil {
				_ = u.Cancel(context.WithoutCancel(ctx))
			}
			return err
		}
		defer rc.Close()
		return t.c.pushBlob(ctx, ep, t.ref.Repo(), d, rc, u, nil)
	})
	return kind, err
}

func (t *regTarget) allowsNondistributable(ctx context.Context) bool {
	return t.c.current().cfg.AllowsNondistributable(ctx, t.ref.Registry)
}

func (t *regTarget) pushManifest(ctx context.Context, m *Manifest, root bool) error {
	ref := t.ref.Repo().WithDigest(m.Descriptor.Digest)
	if root && t.ref.Digest == "" && t.ref.Tag != "" {
		ref = t.ref.WithTag(t.ref.Tag)
	}
	_, err := t.c.PutManifest(ctx, ref, m)
	return err
}
