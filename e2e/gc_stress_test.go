package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/gc"
)

// TestGCStress runs garbage collection in a loop while clients push, tag, untag, re-tag, mount
// and pull random images, multi-platform indexes and referrers over a pool of layers shared
// between repositories. The collections are as aggressive as they can be (no grace period,
// untagged manifests eligible at once), so every race between a push and a collection gets
// its chance. Pushes the collections refuse (metadata.ErrCollected, or a blob the registry no
// longer finds) are retried, as clients do.
//
// Throughout, every image a client has tagged must pull completely and verify. At the end,
// after one last collection with nothing else running, every tagged image pulls, and the
// registry holds exactly what the tags reach: no other manifest, blob link or stored blob.
//
// It runs for a minute (10 s with -short); E2E_GC_STRESS=5m (any Go duration) soaks longer.
func TestGCStress(t *testing.T) {
	t.Parallel()
	duration := time.Minute
	if testing.Short() {
		duration = 10 * time.Second
	}
	if v := os.Getenv("E2E_GC_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("E2E_GC_STRESS=%q: %v", v, err)
		}
		duration = d
	}
	b := startGCBerth(t)
	policy, err := gc.Retention{{Repositories: []string{"**"}, UntaggedAfter: time.Nanosecond}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	aggressive := gc.Options{Policy: policy, TombstoneTTL: time.Hour}

	pool := make([]blob, 8)
	for i := range pool {
		pool[i] = blob{MediaType: mtOCILayerGzip, Data: randomBytes(t, 8<<10+i*3<<10)}
	}
	repos := []string{"stress/a", "stress/b", "stress/c"}
	st := &stressStats{}
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()

	// Two collectors: one collecting back to back with short pauses, one mostly running dry
	// runs; they meet on the lock.
	var gcWG sync.WaitGroup
	for g := range 2 {
		gcWG.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for ctx.Err() == nil {
				opts := aggressive
				opts.DryRun = g == 1 && rng.IntN(4) > 0
				rep, err := gc.Run(context.Background(), b.raw, b.blobs, opts)
				switch {
				case errors.Is(err, gc.ErrLocked):
					st.locked.Add(1)
				case err != nil:
					t.Errorf("gc: %v", err)
					return
				case !opts.DryRun:
					st.collections.Add(1)
					st.freedBlobs.Add(int64(len(rep.Blobs)))
					st.freedBytes.Add(rep.BytesFreed())
					st.removedManifests.Add(int64(len(rep.Manifests)))
				}
				pause := time.NewTimer(time.Duration(rng.IntN(20)) * time.Millisecond)
				select {
				case <-ctx.Done():
				case <-pause.C:
				}
				pause.Stop()
			}
		})
	}

	const clients = 6
	cls := make([]*stressClient, clients)
	var wg sync.WaitGroup
	for i := range cls {
		cls[i] = &stressClient{
			t: t, id: i, base: b.URL, hc: &http.Client{Timeout: time.Minute},
			rng: rand.New(rand.NewPCG(uint64(i), 7)), pool: pool, repos: repos,
			tags: map[string]*stressTag{}, referrers: map[string][]image{}, stats: st,
		}
		wg.Go(func() { cls[i].run(ctx) })
	}
	wg.Wait()
	stop()
	gcWG.Wait()
	if t.Failed() {
		return
	}

	// Every failure the registry logged must be a push refused for collected content.
	for _, f := range b.failures.take() {
		if !collected(f) {
			t.Errorf("request failure other than a collected blob: %s", f)
		}
	}

	// One last collection, alone.
	rep := b.collect(t, aggressive)
	t.Logf("last collection: %s", rep.Summary())

	// Every tagged image pulls; the registry's tags are the clients'; and nothing else is
	// left: manifests, links and stored blobs are exactly what the tags reach.
	wantManifests := map[string]map[string]bool{}
	wantLinks := map[string]map[string]bool{}
	wantStored := map[digest.Digest]bool{}
	wantTags := map[string][]string{}
	for _, c := range cls {
		for _, tg := range c.tags {
			if err := c.verify(tg); err != nil {
				t.Errorf("after the last collection: %v", err)
			}
			wantTags[tg.repo] = append(wantTags[tg.repo], tg.tag)
			if wantManifests[tg.repo] == nil {
				wantManifests[tg.repo], wantLinks[tg.repo] = map[string]bool{}, map[string]bool{}
			}
			c.reach(tg, func(manifest string, blobs []blob) {
				wantManifests[tg.repo][manifest] = true
				for _, bl := range blobs {
					wantLinks[tg.repo][bl.Digest()] = true
					wantStored[digest.Digest(bl.Digest())] = true
				}
			})
		}
	}
	check := func(what string, got []string, want map[string]bool) {
		t.Helper()
		var w []string
		for k := range want {
			w = append(w, k)
		}
		sort.Strings(w)
		sort.Strings(got)
		if !slices.Equal(got, w) {
			t.Errorf("%s: %d left, want %d\n got: %v\nwant: %v", what, len(got), len(w), got, w)
		}
	}
	for _, repo := range repos {
		state := b.state(t, repo)
		var manifests, links []string
		if state != nil {
			for _, m := range state.Manifests {
				manifests = append(manifests, m.Digest.String())
			}
			for _, l := range state.Blobs {
				links = append(links, l.Digest.String())
			}
			var tags []string
			for _, tg := range state.Tags {
				tags = append(tags, tg.Name)
			}
			slices.Sort(tags)
			slices.Sort(wantTags[repo])
			if !slices.Equal(tags, wantTags[repo]) {
				t.Errorf("%s: tags %v, the clients tagged %v", repo, tags, wantTags[repo])
			}
		}
		check(repo+": manifests", manifests, wantManifests[repo])
		check(repo+": blob links", links, wantLinks[repo])
	}
	var stored []string
	for d := range b.stored(t) {
		stored = append(stored, d.String())
	}
	wantStoredStr := map[string]bool{}
	for d := range wantStored {
		wantStoredStr[d.String()] = true
	}
	check("stored blobs", stored, wantStoredStr)

	t.Logf("%v: %d pushes (%d attempts refused and retried, %d given up), %d re-tags, %d untags, %d mounts, "+
		"%d pulls verified; %d collections (%d blobs, %s freed; %d manifests removed), %d turns found the lock taken; "+
		"%d tags left", duration, st.pushes.Load(), st.retries.Load(), st.gaveUp.Load(), st.retags.Load(), st.untags.Load(),
		st.mounts.Load(), st.pulls.Load(), st.collections.Load(), st.freedBlobs.Load(), gc.FormatBytes(st.freedBytes.Load()),
		st.removedManifests.Load(), st.locked.Load(), len(wantTagsFlat(wantTags)))
}

func wantTagsFlat(m map[string][]string) []string {
	var out []string
	for repo, tags := range m {
		for _, t := range tags {
			out = append(out, repo+":"+t)
		}
	}
	return out
}

type stressStats struct {
	pushes, retries, gaveUp, retags, untags, mounts, pulls atomic.Int64
	collections, locked, freedBlobs, freedBytes            atomic.Int64
	removedManifests                                       atomic.Int64
}

// stressTag is a tag a client pushed and what it points at: an image or an index.
type stressTag struct {
	repo, tag string
	img       *image // or
	ix        *index
}

// manifest is the tagged manifest.
func (tg *stressTag) manifest() blob {
	if tg.ix != nil {
		return tg.ix.Manifest
	}
	return tg.img.Manifest
}

// reach calls fn for every manifest tg reaches, with the blobs it references.
func (c *stressClient) reach(tg *stressTag, fn func(manifest string, blobs []blob)) {
	imgs := append([]image{}, c.referrers[tg.manifest().Digest()]...)
	if tg.ix != nil {
		fn(tg.ix.Manifest.Digest(), nil)
		imgs = append(imgs, tg.ix.Images...)
	} else {
		imgs = append(imgs, *tg.img)
	}
	for _, img := range imgs {
		fn(img.Manifest.Digest(), append([]blob{img.Config}, img.Layers...))
	}
}

// stressClient is one client of TestGCStress. It owns the tags named after it (c<id>-<n>) in
// every repository, so it knows which must pull.
type stressClient struct {
	t     *testing.T
	id    int
	base  string
	hc    *http.Client
	rng   *rand.Rand
	pool  []blob
	repos []string
	tags  map[string]*stressTag // by repo:tag
	// referrers are the referrers pushed, by subject digest.
	referrers map[string][]image
	stats     *stressStats
}

// run does random operations until ctx ends or one fails.
func (c *stressClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		var err error
		switch n := c.rng.IntN(100); {
		case n < 30:
			err = c.pushImage(ctx)
		case n < 42:
			err = c.pushIndex(ctx)
		case n < 54:
			err = c.pushReferrer(ctx)
		case n < 62:
			err = c.untag()
		case n < 70:
			err = c.retag(ctx)
		default:
			if tg := c.anyTag(); tg != nil {
				if err = c.verify(tg); err == nil {
					c.stats.pulls.Add(1)
				}
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				c.t.Errorf("client %d: %v", c.id, err)
			}
			return
		}
	}
}

// anyTag returns one of the client's tags at random, or nil.
func (c *stressClient) anyTag() *stressTag {
	if len(c.tags) == 0 {
		return nil
	}
	keys := make([]string, 0, len(c.tags))
	for k := range c.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return c.tags[keys[c.rng.IntN(len(keys))]]
}

// newTag picks a repository and a tag name of the client's.
func (c *stressClient) newTag() (repo, tag string) {
	return c.repos[c.rng.IntN(len(c.repos))], fmt.Sprintf("c%d-%d", c.id, c.rng.IntN(4))
}

// image returns a new image: a config of its own, a layer from the shared pool and, half
// the time, a small layer of its own.
func (c *stressClient) image() image {
	layers := []blob{c.pool[c.rng.IntN(len(c.pool))]}
	if c.rng.IntN(2) == 0 {
		data := make([]byte, 512+c.rng.IntN(2048))
		for i := range data {
			data[i] = byte(c.rng.Uint32())
		}
		layers = append(layers, blob{MediaType: mtOCILayerGzip, Data: data})
	}
	return imageOver(c.t, layers)
}

func (c *stressClient) pushImage(ctx context.Context) error {
	repo, tag := c.newTag()
	img := c.image()
	ok, err := c.retry(ctx, func() (bool, error) {
		if err := c.pushBlobs(repo, img); err != nil {
			return false, err
		}
		return c.putManifest(repo, tag, img.Manifest)
	})
	if ok {
		c.stats.pushes.Add(1)
		c.tags[repo+":"+tag] = &stressTag{repo: repo, tag: tag, img: &img}
		return c.verify(c.tags[repo+":"+tag])
	}
	return err
}

func (c *stressClient) pushIndex(ctx context.Context) error {
	repo, tag := c.newTag()
	ix := index{Images: []image{c.image(), c.image()}}
	var descs []descriptor
	for i, img := range ix.Images {
		d := img.Manifest.Descriptor()
		d.Platform = &platform{OS: "linux", Architecture: []string{"amd64", "arm64"}[i]}
		descs = append(descs, d)
	}
	ix.Manifest = blob{MediaType: mtOCIIndex, Data: mustJSON(c.t, manifestDoc{SchemaVersion: 2, MediaType: mtOCIIndex, Manifests: descs})}
	ok, err := c.retry(ctx, func() (bool, error) {
		for _, img := range ix.Images {
			if err := c.pushBlobs(repo, img); err != nil {
				return false, err
			}
			if ok, err := c.putManifest(repo, img.Manifest.Digest(), img.Manifest); !ok || err != nil {
				return ok, err
			}
		}
		return c.putManifest(repo, tag, ix.Manifest)
	})
	if ok {
		c.stats.pushes.Add(1)
		c.tags[repo+":"+tag] = &stressTag{repo: repo, tag: tag, ix: &ix}
		return c.verify(c.tags[repo+":"+tag])
	}
	return err
}

// pushReferrer pushes a signature or SBOM of one of the client's tagged manifests.
func (c *stressClient) pushReferrer(ctx context.Context) error {
	tg := c.anyTag()
	if tg == nil {
		return nil
	}
	art := artifact(c.t, tg.manifest(), []string{typeSignature, typeSBOM}[c.rng.IntN(2)])
	ok, err := c.retry(ctx, func() (bool, error) {
		if err := c.pushBlobs(tg.repo, art); err != nil {
			return false, err
		}
		return c.putManifest(tg.repo, art.Manifest.Digest(), art.Manifest)
	})
	if ok {
		c.stats.pushes.Add(1)
		subject := tg.manifest().Digest()
		c.referrers[subject] = append(c.referrers[subject], art)
		return c.verify(tg)
	}
	return err
}

func (c *stressClient) untag() error {
	tg := c.anyTag()
	if tg == nil {
		return nil
	}
	st, body, err := c.do("DELETE", "/v2/"+tg.repo+"/manifests/"+tg.tag, nil, "")
	if err != nil {
		return err
	}
	if st != http.StatusAccepted {
		return fmt.Errorf("untag %s:%s: %d %s", tg.repo, tg.tag, st, body)
	}
	delete(c.tags, tg.repo+":"+tg.tag)
	c.stats.untags.Add(1)
	return nil
}

// retag points another tag of the client, in the same repository, at a tagged manifest.
func (c *stressClient) retag(ctx context.Context) error {
	tg := c.anyTag()
	if tg == nil {
		return nil
	}
	tag := fmt.Sprintf("c%d-%d", c.id, c.rng.IntN(4))
	m := tg.manifest()
	ok, err := c.retry(ctx, func() (bool, error) { return c.putManifest(tg.repo, tag, m) })
	if err != nil || !ok {
		return err
	}
	c.stats.retags.Add(1)
	moved := *tg
	moved.tag = tag
	c.tags[tg.repo+":"+tag] = &moved
	return c.verify(&moved)
}

// retry runs a push until it succeeds (true), the collections keep refusing it too often
// (false, nil: the client gives up, which is allowed), or it fails otherwise.
func (c *stressClient) retry(ctx context.Context, push func() (bool, error)) (bool, error) {
	for range 20 {
		ok, err := push()
		if errors.Is(err, errRefused) {
			ok, err = false, nil
		}
		if err != nil || ok {
			return ok, err
		}
		c.stats.retries.Add(1)
		if ctx.Err() != nil {
			return false, nil
		}
	}
	c.stats.gaveUp.Add(1)
	return false, nil
}

// errRefused marks an answer a collection explains: the push is to be retried.
var errRefused = errors.New("refused")

// pushBlobs pushes an image's config and layers that the repository lacks: HEAD, then for a
// pool layer sometimes a mount from another repository, else an upload.
func (c *stressClient) pushBlobs(repo string, img image) error {
	for _, bl := range append([]blob{img.Config}, img.Layers...) {
		st, _, err := c.do("HEAD", "/v2/"+repo+"/blobs/"+bl.Digest(), nil, "")
		if err != nil {
			return err
		}
		if st == http.StatusOK {
			continue
		}
		loc := ""
		if len(bl.Data) >= 8<<10 && c.rng.IntN(2) == 0 {
			from := c.repos[c.rng.IntN(len(c.repos))]
			st, hdr, err := c.doHeader("POST", "/v2/"+repo+"/blobs/uploads/?mount="+bl.Digest()+"&from="+from)
			if err != nil {
				return err
			}
			if st == http.StatusCreated {
				c.stats.mounts.Add(1)
				continue
			}
			if st != http.StatusAccepted && st != http.StatusServiceUnavailable {
				return fmt.Errorf("mount %s into %s: %d", bl.Digest(), repo, st)
			}
			loc = hdr.Get("Location")
		}
		if loc == "" {
			st, hdr, err := c.doHeader("POST", "/v2/"+repo+"/blobs/uploads/")
			if err != nil {
				return err
			}
			if st != http.StatusAccepted {
				return fmt.Errorf("start upload in %s: %d", repo, st)
			}
			loc = hdr.Get("Location")
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		st, body, err := c.do("PUT", loc+sep+"digest="+bl.Digest(), bl.Data, mtOctetStream)
		if err != nil {
			return err
		}
		switch st {
		case http.StatusCreated:
		case http.StatusServiceUnavailable:
			return errRefused
		default:
			return fmt.Errorf("upload %s to %s: %d %s", bl.Digest(), repo, st, body)
		}
	}
	return nil
}

// putManifest pushes m under ref. It reports false (to retry) when the registry refuses it
// for content a collection removed: MANIFEST_BLOB_UNKNOWN, for content removed after the
// client checked it.
func (c *stressClient) putManifest(repo, ref string, m blob) (bool, error) {
	st, body, err := c.do("PUT", "/v2/"+repo+"/manifests/"+ref, m.Data, m.MediaType)
	if err != nil {
		return false, err
	}
	switch {
	case st == http.StatusCreated:
		return true, nil
	case st == http.StatusBadRequest && bytes.Contains(body, []byte("MANIFEST_BLOB_UNKNOWN")):
		return false, nil
	}
	return false, fmt.Errorf("put manifest %s:%s: %d %s", repo, ref, st, body)
}

// verify pulls a tag: the manifest, every child and blob, and the referrers pushed for it,
// checking every byte.
func (c *stressClient) verify(tg *stressTag) error {
	where := fmt.Sprintf("%s:%s", tg.repo, tg.tag)
	if err := c.pullManifest(tg.repo, tg.tag, tg.manifest()); err != nil {
		return fmt.Errorf("pull %s: %w", where, err)
	}
	var imgs []image
	if tg.ix != nil {
		imgs = append(imgs, tg.ix.Images...)
	} else {
		imgs = append(imgs, *tg.img)
	}
	refs := c.referrers[tg.manifest().Digest()]
	imgs = append(imgs, refs...)
	for _, img := range imgs {
		if err := c.pullManifest(tg.repo, img.Manifest.Digest(), img.Manifest); err != nil {
			return fmt.Errorf("pull %s: %w", where, err)
		}
		for _, bl := range append([]blob{img.Config}, img.Layers...) {
			st, body, err := c.do("GET", "/v2/"+tg.repo+"/blobs/"+bl.Digest(), nil, "")
			if err != nil {
				return err
			}
			if st != http.StatusOK || sha256Digest(body) != bl.Digest() {
				return fmt.Errorf("pull %s: blob %s of %s: %d, %d bytes", where, bl.Digest(), img.Manifest.Digest(), st, len(body))
			}
		}
	}
	if len(refs) > 0 {
		st, body, err := c.do("GET", "/v2/"+tg.repo+"/referrers/"+tg.manifest().Digest(), nil, "")
		if err != nil {
			return err
		}
		var list manifestDoc
		if st != http.StatusOK || json.Unmarshal(body, &list) != nil {
			return fmt.Errorf("referrers of %s: %d %s", where, st, body)
		}
		listed := map[string]bool{}
		for _, d := range list.Manifests {
			listed[d.Digest] = true
		}
		for _, r := range refs {
			if !listed[r.Manifest.Digest()] {
				return fmt.Errorf("referrers of %s lack %s", where, r.Manifest.Digest())
			}
		}
	}
	return nil
}

func (c *stressClient) pullManifest(repo, ref string, want blob) error {
	st, body, err := c.do("GET", "/v2/"+repo+"/manifests/"+ref, nil, "")
	if err != nil {
		return err
	}
	if st != http.StatusOK || !bytes.Equal(body, want.Data) {
		return fmt.Errorf("manifest %s (want %s): %d %.200s", ref, want.Digest(), st, body)
	}
	return nil
}

// do sends a request and reads the whole answer.
func (c *stressClient) do(method, target string, body []byte, contentType string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if !strings.HasPrefix(target, "http") {
		target = c.base + target
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// doHeader sends a bodiless request and returns the status and headers.
func (c *stressClient) doHeader(method, target string) (int, http.Header, error) {
	req, err := http.NewRequest(method, c.base+target, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}
