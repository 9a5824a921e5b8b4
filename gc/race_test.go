package gc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
)

// TestUploadDuringSweep is race 1 of the package documentation, step by
// step: an upload stores a blob's bytes, a collection deletes them before
// the upload links the blob, then the upload links it.
func TestUploadDuringSweep(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		content := "stored long ago"
		d := digest.FromString(content)
		if _, err := e.blobs.Put(ctx, "app", d, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		e.backdate(d, 3*grace)

		// The upload: storage writes the bytes again (fresh bytes are
		// what the grace period protects), and its link is then delayed
		// past the grace period, as a stalled request would be.
		size, err := e.blobs.Put(ctx, "app", d, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		e.backdate(d, 3*grace)
		// The collection: nothing links the bytes, and they are old.
		if rep := e.run(nil); len(rep.Blobs) != 1 {
			t.Fatalf("collection deleted %v, want the unlinked blob", refs(rep.Blobs))
		}
		// The upload links the blob: that must fail, not serve nothing.
		err = e.meta.LinkBlob(ctx, "app", d, size)
		if !errors.Is(err, metadata.ErrCollected) {
			t.Fatalf("linking a blob whose bytes were collected: %v, want ErrCollected", err)
		}
		e.wantBlob("app", d, false, false)
		// The client pushes it again, and it is there.
		e.push("app", content)
		e.wantBlob("app", d, true, true)

		// The other order: the link commits before the collection looks,
		// and the bytes stay.
		content2 := "also stored long ago"
		d2 := digest.FromString(content2)
		if _, err := e.blobs.Put(ctx, "lib", d2, strings.NewReader(content2)); err != nil {
			t.Fatal(err)
		}
		e.backdate(d2, 3*grace)
		e.push("lib", content2)
		e.run(nil)
		e.wantBlob("lib", d2, true, true)

		// A mount reads the size from one repository and links the blob
		// into another; a collection in between removes the source's
		// link and the bytes. The mount must fail too.
		src := e.push("src", "mounted")
		e.later()
		if _, err := e.meta.BlobSize(ctx, "src", src); err != nil {
			t.Fatal(err)
		}
		e.run(nil)
		err = e.meta.LinkBlob(ctx, "dst", src, int64(len("mounted")))
		if !errors.Is(err, metadata.ErrCollected) {
			t.Fatalf("mounting a blob whose bytes were collected: %v, want ErrCollected", err)
		}
		e.checkConsistent()
	})
}

// TestManifestDuringSweep is race 2: a client checks that a blob (or child
// manifest) is in the repository, a collection removes it, then the client
// pushes a manifest that needs it. The push must fail rather than store an
// image with a hole; pushing the content again makes it succeed.
func TestManifestDuringSweep(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		untagged := mustPolicy(t, Rule{Repositories: []string{"**"}, UntaggedAfter: time.Hour})
		cfg := e.push("app", "config")
		layer := e.push("app", "layer")
		child := manifest("child", mtManifest, []digest.Digest{cfg}, nil, "")
		e.put("app", child)
		e.later()

		// HEAD: the layer is there.
		if _, err := e.meta.BlobSize(ctx, "app", layer); err != nil {
			t.Fatal(err)
		}
		rep := e.run(untagged)
		if len(rep.Links) != 2 || len(rep.Manifests) != 1 {
			t.Fatalf("collection removed links %v and manifests %v, want both blobs and the child", refs(rep.Links), refs(rep.Manifests))
		}
		img := manifest("image", mtManifest, []digest.Digest{cfg, layer}, nil, "")
		if err := e.meta.PutManifest(ctx, "app", img, "v1"); !errors.Is(err, metadata.ErrCollected) {
			t.Fatalf("pushing a manifest whose blobs were collected: %v, want ErrCollected", err)
		}
		idx := manifest("index", mtIndex, nil, []digest.Digest{child.Digest}, "")
		if err := e.meta.PutManifest(ctx, "app", idx, "multi"); !errors.Is(err, metadata.ErrCollected) {
			t.Fatalf("pushing an index whose child was collected: %v, want ErrCollected", err)
		}
		if _, err := e.meta.ResolveTag(ctx, "app", "v1"); err == nil {
			t.Fatal("the refused push left a tag")
		}

		e.push("app", "config")
		e.push("app", "layer")
		e.put("app", img, "v1")
		e.put("app", child)
		e.put("app", idx, "multi")
		e.run(untagged)
		e.checkConsistent()
		e.wantImage("app", img, true)
		e.wantImage("app", child, true)

		// Tombstones last TombstoneTTL: after it, a manifest referencing
		// content that was collected and never pushed again is accepted,
		// as any sparse manifest.
		gone := e.push("app", "gone")
		e.later()
		e.run(untagged)
		sparse := manifest("sparse", mtManifest, []digest.Digest{cfg, gone}, nil, "")
		if err := e.meta.PutManifest(ctx, "app", sparse, "sparse"); !errors.Is(err, metadata.ErrCollected) {
			t.Fatalf("pushing a manifest whose blob was just collected: %v, want ErrCollected", err)
		}
		e.clock.Advance(tombstoneTTL)
		e.run(untagged)
		e.put("app", sparse, "sparse")
	})
}

// TestPushesDuringCollections has clients push, tag, untag and re-push
// images drawn from a small pool of shared content (so uploads keep
// finding bytes already stored, and content keeps becoming garbage and
// wanted again) while collections that see everything as old run back to
// back, two of them at once without the lock. Each client checks its
// tagged images after every push, and at the end everything tagged must
// be complete and everything else gone.
func TestPushesDuringCollections(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		policy := mustPolicy(t, Rule{Repositories: []string{"**"}, UntaggedAfter: time.Nanosecond})
		// Grace zero: every unreferenced link and blob is fair game at
		// once, which is what makes the races likely.
		opts := Options{Policy: policy, TombstoneTTL: time.Hour}

		var collections atomic.Int64
		var gcWG sync.WaitGroup
		for range 2 {
			gcWG.Go(func() {
				for ctx.Err() == nil {
					if _, err := collect(ctx, e.raw, e.blobs, opts); err != nil && ctx.Err() == nil {
						t.Errorf("collect: %v", err)
						return
					}
					collections.Add(1)
				}
			})
		}

		const clients, rounds = 4, 25
		var refused atomic.Int64
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 1))
				repo := fmt.Sprintf("client-%d", c%2) // two clients per repository
				for i := range rounds {
					tag := fmt.Sprintf("c%d-%d", c, i%3)
					img := pushImage(ctx, e, repo, rng, &refused)
					if img == nil {
						return
					}
					if err := e.meta.PutManifest(ctx, repo, img, tag); err != nil {
						// Blobs went between their check and the
						// manifest: the next round pushes again.
						if errors.Is(err, metadata.ErrCollected) {
							refused.Add(1)
							continue
						}
						if ctx.Err() == nil {
							t.Errorf("client %d: %v", c, err)
						}
						return
					}
					// Now tagged, it must be complete, whatever runs.
					for _, b := range img.Blobs {
						if _, err := e.meta.BlobSize(ctx, repo, b); err != nil {
							t.Errorf("client %d: %s:%s: blob %s not linked: %v", c, repo, tag, short(b), err)
						}
						if _, err := e.blobs.Stat(ctx, b); err != nil {
							t.Errorf("client %d: %s:%s: blob %s not stored: %v", c, repo, tag, short(b), err)
						}
					}
					if rng.IntN(3) == 0 {
						if err := e.meta.DeleteTag(ctx, repo, tag); err != nil && !errors.Is(err, metadata.ErrNotFound) {
							t.Errorf("client %d: untag: %v", c, err)
						}
					}
				}
			})
		}
		wg.Wait()
		cancel()
		gcWG.Wait()
		if t.Failed() {
			return
		}

		// One last collection, with nothing else running, leaves exactly
		// what the tags need.
		if _, err := Run(t.Context(), e.raw, e.blobs, opts); err != nil {
			t.Fatal(err)
		}
		e.checkConsistent()
		needed := map[digest.Digest]bool{}
		for _, repo := range []string{"client-0", "client-1"} {
			st := dump(t, e.raw, repo)
			if st == nil {
				continue
			}
			tagged := map[digest.Digest]bool{}
			for _, tg := range st.Tags {
				tagged[tg.Manifest] = true
			}
			linked := map[digest.Digest]bool{}
			for _, m := range st.Manifests {
				if !tagged[m.Digest] {
					t.Errorf("%s: untagged manifest %s survived the last collection", repo, short(m.Digest))
				}
				for _, b := range m.Blobs {
					linked[b] = true
					needed[b] = true
				}
			}
			for _, b := range st.Blobs {
				if !linked[b.Digest] {
					t.Errorf("%s: link to %s, which no manifest needs, survived the last collection", repo, short(b.Digest))
				}
			}
		}
		for _, d := range e.storedBlobs() {
			if !needed[d] {
				t.Errorf("blob %s, which no manifest needs, survived the last collection", short(d))
			}
		}
		t.Logf("%d collections ran alongside; %d pushes refused with ErrCollected and retried", collections.Load(), refused.Load())
	})
}

// contentPool is the content the clients of TestPushesDuringCollections
// draw layers from.
const contentPool = 8

// pushImage uploads a config of its own and two layers from the pool, as
// a client does: HEAD each blob and upload the missing ones. It returns
// the manifest to push, or nil when ctx ended.
func pushImage(ctx context.Context, e *env, repo string, rng *rand.Rand, refused *atomic.Int64) *metadata.Manifest {
	contents := []string{
		fmt.Sprintf("config %d", rng.Int64()),
		fmt.Sprintf("layer %d", rng.IntN(contentPool)),
		fmt.Sprintf("layer %d", rng.IntN(contentPool)),
	}
	var blobs []digest.Digest
	for _, c := range contents {
		d := digest.FromString(c)
		blobs = append(blobs, d)
		if _, err := e.meta.BlobSize(ctx, repo, d); err == nil {
			continue
		}
		if err := retryCollected(ctx, refused, func() error { return e.pushErr(repo, c) }); err != nil {
			if ctx.Err() == nil {
				e.t.Errorf("push %s: %v", repo, err)
			}
			return nil
		}
	}
	return manifest(contents[0], mtManifest, blobs, nil, "")
}

// retryCollected runs fn until it does not fail with ErrCollected, as a
// client retries a failed push. With no grace period two collectors in a
// tight loop can take the bytes again between every upload and its link,
// so progress needs many tries; safety does not depend on the count.
func retryCollected(ctx context.Context, refused *atomic.Int64, fn func() error) error {
	var err error
	for range 50 {
		if err = fn(); !errors.Is(err, metadata.ErrCollected) {
			return err
		}
		refused.Add(1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return err
}
