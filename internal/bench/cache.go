package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// layerImage is an image of one config and one large layer of random
// bytes, for pulls.
type layerImage struct {
	config, layer, manifest []byte
	configDigest, layerDig  digest.Digest
	digest                  digest.Digest
}

func newLayerImage(seed uint64, size int64) layerImage {
	var img layerImage
	img.layer = make([]byte, size)
	fillRandom(img.layer, seed)
	img.layerDig = digest.FromBytes(img.layer)
	img.config = []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]},"seed":%d}`, img.layerDig, seed))
	img.configDigest = digest.FromBytes(img.config)
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	m, err := json.Marshal(struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, mediaTypeManifest, desc{mediaTypeConfig, img.configDigest, int64(len(img.config))}, []desc{{mediaTypeLayer, img.layerDig, size}}})
	if err != nil {
		panic(err) // plain structs always marshal
	}
	img.manifest = m
	img.digest = digest.FromBytes(m)
	return img
}

// push uploads the image to repo under tag.
func (img layerImage) push(ctx context.Context, c *Client, repo, tag string) error {
	if err := c.PushMonolithic(ctx, repo, bytes.NewReader(img.layer), int64(len(img.layer)), img.layerDig); err != nil {
		return err
	}
	if _, err := c.PushSmall(ctx, repo, img.config); err != nil {
		return err
	}
	return c.PutManifest(ctx, repo, tag, mediaTypeManifest, img.manifest)
}

// pull fetches the manifest by tag, the config and the layer (discarded),
// as a client pull does one blob at a time, and returns the time taken.
func (img layerImage) pull(ctx context.Context, c *Client, repo, tag string) (time.Duration, error) {
	start := time.Now()
	m, err := c.GetManifest(ctx, repo, tag, acceptManifests)
	if err != nil {
		return 0, err
	}
	if digest.FromBytes(m) != img.digest {
		return 0, fmt.Errorf("%s:%s: manifest %s, want %s", repo, tag, digest.FromBytes(m), img.digest)
	}
	if _, err := c.GetBlobDiscard(ctx, repo, img.configDigest, int64(len(img.config))); err != nil {
		return 0, err
	}
	if _, err := c.GetBlobDiscard(ctx, repo, img.layerDig, int64(len(img.layer))); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Names in the cache workload: the upstream's repository, and berth's
// cache prefix and hosted copy.
const (
	cacheRepo       = "bench/cached"
	cachePrefix     = "up/"
	cacheHostedRepo = "hosted/bench/cached"
	cacheTag        = "v1"
)

// berthCacheConfig is berth's configuration with one cache registry of
// upstream under cachePrefix.
func berthCacheConfig(upstream string) string {
	return fmt.Sprintf("registries:\n  - name: up\n    type: cache\n    prefix: %s\n    upstream:\n      url: %s\n", cachePrefix, upstream)
}

// distributionProxyConfig is the extra configuration making distribution a
// pull-through proxy of upstream.
func distributionProxyConfig(upstream string) string {
	return "proxy:\n  remoteurl: " + upstream + "\n"
}

// cacheWorkload measures pulls through a cache connector: berth as a
// pull-through cache of an upstream registry (a third server on loopback,
// distribution holding the image), against distribution configured as a
// proxy (proxy.remoteurl) of the same upstream: the time to first byte of
// the large blob on a cold cache (fresh caches each repetition, against
// the upstream's own), and warm pulls (against the same image hosted in
// berth).
func (r *runner) cacheWorkload(ctx context.Context, rep *Report) error {
	berth, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	size := r.sz.CacheLayer
	r.logf("cache: generating a %s layer", sizeName(size))
	img := newLayerImage(r.salt+7, size)
	up := newConfiguredDistribution(r.tools.Distribution, filepath.Join(r.dir, "cache-upstream"), "upstream", "", "")
	if err := r.startServers(ctx, up); err != nil {
		return err
	}
	defer up.Stop()
	upC := NewClient(up.URL(), 16)
	defer upC.Close()
	if err := img.push(ctx, upC, cacheRepo, cacheTag); err != nil {
		return fmt.Errorf("pushing to the upstream: %w", err)
	}
	if _, err := img.pull(ctx, upC, cacheRepo, cacheTag); err != nil {
		return fmt.Errorf("pulling from the upstream: %w", err)
	}

	// Cold: fresh caches each repetition.
	var coldTTFB [3][]float64 // berth cache, distribution proxy, upstream direct
	var coldPull [2][]float64
	var bc, dp *Server
	stopCaches := func() {
		for _, s := range []*Server{bc, dp} {
			if s != nil {
				_ = s.Stop()
			}
		}
	}
	defer stopCaches()
	for k := range r.cfg.Reps {
		stopCaches()
		if k > 0 && !r.cfg.Keep {
			_ = removeAll(bc.Dir, 4)
			_ = removeAll(dp.Dir, 4)
		}
		bc = newConfiguredBerth(berth, filepath.Join(r.dir, fmt.Sprintf("cache-berth-%d", k)), "berth", berthCacheConfig(up.URL()))
		dp = newConfiguredDistribution(r.tools.Distribution, filepath.Join(r.dir, fmt.Sprintf("cache-distribution-%d", k)), "distribution", "", distributionProxyConfig(up.URL()))
		if err := r.startServers(ctx, bc, dp); err != nil {
			return err
		}
		targets := []struct {
			name string
			base string
			repo string
		}{
			{"berth cache", bc.URL(), cachePrefix + cacheRepo},
			{"distribution proxy", dp.URL(), cacheRepo},
			{"upstream", up.URL(), cacheRepo},
		}
		for j := range targets {
			i := (k + j) % len(targets)
			t := targets[i]
			c := NewClient(t.base, 16)
			start := time.Now()
			if _, err := c.GetManifest(ctx, t.repo, cacheTag, acceptManifests); err != nil {
				c.Close()
				return fmt.Errorf("cold pull through %s: %w", t.name, err)
			}
			ttfb, _, err := getBlobTTFB(ctx, c, t.repo, img.layerDig, size)
			if err != nil {
				c.Close()
				return fmt.Errorf("cold pull through %s: %w", t.name, err)
			}
			if _, err := c.GetBlobDiscard(ctx, t.repo, img.configDigest, int64(len(img.config))); err != nil {
				c.Close()
				return fmt.Errorf("cold pull through %s: %w", t.name, err)
			}
			el := time.Since(start)
			c.Close()
			coldTTFB[i] = append(coldTTFB[i], ms(ttfb))
			if i < 2 {
				coldPull[i] = append(coldPull[i], ms(el))
			}
			r.logf("  cold %-18s TTFB %7.1f ms, pull %7.1f ms", t.name, ms(ttfb), ms(el))
		}
	}

	// Warm: the last repetition's caches hold the image; berth also hosts it.
	bcC, dpC := NewClient(bc.URL(), 16), NewClient(dp.URL(), 16)
	defer bcC.Close()
	defer dpC.Close()
	if err := img.push(ctx, bcC, cacheHostedRepo, cacheTag); err != nil {
		return fmt.Errorf("pushing to berth hosted: %w", err)
	}
	warmTargets := []struct {
		name string
		c    *Client
		repo string
	}{
		{"berth cache", bcC, cachePrefix + cacheRepo},
		{"distribution proxy", dpC, cacheRepo},
		{"berth hosted", bcC, cacheHostedRepo},
	}
	for _, t := range warmTargets { // untimed: connections and page cache
		if _, err := img.pull(ctx, t.c, t.repo, cacheTag); err != nil {
			return fmt.Errorf("warm pull through %s: %w", t.name, err)
		}
	}
	var warm [3][]float64
	rounds := max(r.cfg.Reps, 5)
	for k := range rounds {
		for j := range warmTargets {
			i := (k + j) % len(warmTargets)
			t := warmTargets[i]
			el, err := img.pull(ctx, t.c, t.repo, cacheTag)
			if err != nil {
				return fmt.Errorf("warm pull through %s: %w", t.name, err)
			}
			warm[i] = append(warm[i], ms(el))
			r.logf("  warm %-18s %7.1f ms", t.name, ms(el))
		}
	}

	wb, wd, wh := Median(warm[0]), Median(warm[1]), Median(warm[2])
	tb, td, tu := Median(coldTTFB[0]), Median(coldTTFB[1]), Median(coldTTFB[2])
	warmHosted := Row{Metric: "warm pull, berth cache vs berth hosted", Unit: "ms", Peer: "berth hosted", Berth: wb, Dist: wh, LowerIsBetter: true}
	warmHosted.Target = &Target{Text: "warm pull through berth's cache within 10 % of a pull of hosted content", Met: warmHosted.Ratio() <= 1.10}
	ttfbUp := Row{Metric: "cold pull time to first byte of the layer, berth cache vs the upstream's own", Unit: "ms", Peer: "upstream", Berth: tb, Dist: tu, LowerIsBetter: true}
	ttfbUp.Target = &Target{Text: "cold-pull TTFB ≤ upstream's TTFB + 20 ms", Met: tb <= tu+20}
	rep.Sections = append(rep.Sections, Section{
		Name: fmt.Sprintf("Pulls through a cache connector (%s layer)", sizeName(size)),
		About: fmt.Sprintf("An upstream distribution registry on loopback holds an image of one %s layer. berth caches it with a `registries:` entry of type cache (`prefix: up/`); distribution caches it as a pull-through proxy (`proxy: remoteurl:`). "+
			"Cold: %d times, both caches start on fresh data directories, and one client fetches the manifest by tag and then the layer; the time to first byte is from the layer's GET to the first body byte (the upstream's own is the same GET sent to the upstream directly). "+
			"Warm: after those pulls, %d rounds of manifest by tag + config + layer (discarded) through each cache and from the same image pushed to the berth instance as hosted content, taking turns.",
			sizeName(size), r.cfg.Reps, rounds),
		Rows: []Row{
			{Metric: "warm pull (manifest + blobs)", Unit: "ms", Berth: wb, Dist: wd, LowerIsBetter: true},
			warmHosted,
			{Metric: "cold pull time to first byte of the layer", Unit: "ms", Berth: tb, Dist: td, LowerIsBetter: true},
			ttfbUp,
			{Metric: "cold pull (manifest + blobs)", Unit: "ms", Berth: Median(coldPull[0]), Dist: Median(coldPull[1]), LowerIsBetter: true},
		},
	})
	return nil
}
