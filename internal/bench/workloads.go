package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	// acceptManifests is the Accept header of a containerd pull.
	acceptManifests = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"

	// fixtureConns is how many requests at a time populate fixtures.
	fixtureConns = 8
)

// removeBlob deletes a pushed blob's file (and its digest directory) from a
// server's storage, to bound the disk used by repeated pushes. The server's
// own records of it stay; nothing reads them afterwards.
func removeBlob(s *Server, d digest.Digest) error {
	p := s.BlobPath(d.Encoded())
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%s: pushed blob not where expected: %w", s.Name, err)
	}
	return os.RemoveAll(filepath.Dir(p))
}

func (r *runner) blobWorkload(ctx context.Context, rep *Report) error {
	size := r.sz.BigBlob
	name := sizeName(size) + " blob"
	r.logf("%s: generating content", name)
	data := make([]byte, size)
	fillRandom(data, r.salt)
	b := newBlob(data, r.salt)
	const repo = "bench/blob"

	var mono, monoRSS measurement
	var last [2]digest.Digest
	if err := r.restart(ctx, "blob-monolithic"); err != nil {
		return err
	}
	r.logf("%s: monolithic push", name)
	err := r.alternateCeiling(ctx, "monolithic push", false, &monoRSS, func(i int, s *Server, c *Client) error {
		d := b.Next()
		syncAll()
		start := time.Now()
		if err := c.PushMonolithic(ctx, repo, bytes.NewReader(data), size, d); err != nil {
			return err
		}
		rate := Rate(size, time.Since(start))
		mono.add(i, rate)
		r.logf("  %-12s %7.1f MiB/s", s.Name, rate)
		if i == ceilingIndex {
			return removeBlob(s, d)
		}
		if last[i] != "" {
			if err := removeBlob(s, last[i]); err != nil {
				return err
			}
		}
		last[i] = d
		return nil
	})
	if err != nil {
		return err
	}

	var chunked, chunkedRSS measurement
	if err := r.restart(ctx, "blob-chunked"); err != nil {
		return err
	}
	r.logf("%s: chunked push (%s PATCHes)", name, sizeName(int64(r.sz.Chunk)))
	err = r.alternateCeiling(ctx, "chunked push", false, &chunkedRSS, func(i int, s *Server, c *Client) error {
		d := b.Next()
		syncAll()
		start := time.Now()
		if err := c.PushChunked(ctx, repo, data, r.sz.Chunk, d); err != nil {
			return err
		}
		rate := Rate(size, time.Since(start))
		chunked.add(i, rate)
		r.logf("  %-12s %7.1f MiB/s", s.Name, rate)
		return removeBlob(s, d)
	})
	if err != nil {
		return err
	}

	var get, getRSS measurement
	if err := r.restart(ctx, "blob-get"); err != nil {
		return err
	}
	r.logf("%s: GET", name)
	for i, c := range r.clients {
		if _, err := c.GetBlob(ctx, repo, last[i], size); err != nil {
			return fmt.Errorf("verifying GET on %s: %w", r.servers[i].Name, err)
		}
	}
	err = r.alternate(ctx, "GET", false, &getRSS, func(i int, s *Server, c *Client) error {
		el, err := c.GetBlobDiscard(ctx, repo, last[i], size)
		if err != nil {
			return err
		}
		rate := Rate(size, el)
		get.add(i, rate)
		r.logf("  %-12s %7.1f MiB/s", s.Name, rate)
		return nil
	})
	if err != nil {
		return err
	}
	for i, s := range r.servers {
		if err := removeBlob(s, last[i]); err != nil {
			return err
		}
	}

	bound := rep.Limits.UploadBound()
	monoRow := Row{Metric: "monolithic push", Unit: "MiB/s", Berth: mono.median(0), Dist: mono.median(1), Ceiling: mono.median(ceilingIndex)}
	monoRow.Target = &Target{Text: sizeName(size) + " monolithic push ≥ 1.5× distribution", Met: monoRow.Ratio() >= 1.5}
	if monoRow.Ceiling > 0 {
		monoRow.CeilingTarget = &Target{Text: sizeName(size) + " monolithic push ≥ 0.95 of the PUT ceiling", Met: monoRow.Fraction() >= 0.95}
	}
	chunkRow := Row{Metric: "chunked push", Unit: "MiB/s", Berth: chunked.median(0), Dist: chunked.median(1), Ceiling: chunked.median(ceilingIndex)}
	if chunkRow.Ceiling > 0 {
		chunkRow.CeilingTarget = &Target{Text: fmt.Sprintf("%s chunked push (%s chunks) ≥ 0.9 of the PUT ceiling", sizeName(size), sizeName(int64(r.sz.Chunk))), Met: chunkRow.Fraction() >= 0.9}
	}
	frac := Row{Metric: "monolithic push / upload bound", Unit: "%", Berth: 100 * mono.median(0) / bound, Dist: 100 * mono.median(1) / bound}
	frac.Target = &Target{Text: fmt.Sprintf("%s monolithic push ≥ 80 %% of min(SHA-256, disk) = %s MiB/s", sizeName(size), formatNum(bound)), Met: frac.Berth >= 80}
	getRow := Row{Metric: "GET", Unit: "MiB/s", Berth: get.median(0), Dist: get.median(1)}
	getRow.Target = &Target{Text: sizeName(size) + " GET ≥ distribution", Met: getRow.Ratio() >= 1}
	rep.BerthPush, rep.DistPush = mono.median(0), mono.median(1)
	rep.Sections = append(rep.Sections, Section{
		Name: name,
		About: fmt.Sprintf("One client pushes a %s blob to one repository as a monolithic upload, then as chunked PATCHes of %s, and pulls it with a GET.",
			sizeName(size), sizeName(int64(r.sz.Chunk))),
		Rows: []Row{
			monoRow, frac,
			chunkRow,
			getRow,
			{Metric: "peak RSS, monolithic push", Unit: "MiB", Berth: monoRSS.max(0), Dist: monoRSS.max(1), Ceiling: monoRSS.max(ceilingIndex), LowerIsBetter: true},
			{Metric: "peak RSS, chunked push", Unit: "MiB", Berth: chunkedRSS.max(0), Dist: chunkedRSS.max(1), Ceiling: chunkedRSS.max(ceilingIndex), LowerIsBetter: true},
			{Metric: "peak RSS, GET", Unit: "MiB", Berth: getRSS.max(0), Dist: getRSS.max(1), LowerIsBetter: true},
		},
	})
	return nil
}

func (r *runner) concurrentWorkload(ctx context.Context, rep *Report) error {
	n, size := r.sz.Pushes, r.sz.PushBlob
	name := fmt.Sprintf("%d concurrent pushes of %s", n, sizeName(size))
	r.logf("%s: generating content", name)
	data := make([]byte, int64(n)*size)
	fillRandom(data, r.salt+1)
	blobs := make([]*blob, n)
	for j := range blobs {
		blobs[j] = newBlob(data[int64(j)*size:int64(j+1)*size], r.salt+uint64(j))
	}
	var thr, rss, growth, fileRSS measurement
	r.logf("%s", name)
	err := r.alternateCeiling(ctx, "concurrent push", true, &rss, func(i int, s *Server, c *Client) error {
		digests := make([]digest.Digest, n)
		for j, b := range blobs {
			digests[j] = b.Next()
		}
		syncAll()
		before, file, err := s.RSS()
		if err != nil {
			return err
		}
		fileRSS.add(i, float64(file)/MiB)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := time.Now()
		for j := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				repo := fmt.Sprintf("bench/push-%02d", j)
				errs[j] = c.PushMonolithic(ctx, repo, bytes.NewReader(blobs[j].Data), size, digests[j])
			}()
		}
		wg.Wait()
		el := time.Since(start)
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		rate := Rate(int64(n)*size, el)
		thr.add(i, rate)
		peak, _ := s.PeakRSS()
		growth.add(i, float64(peak-before)/MiB)
		r.logf("  %-12s %7.1f MiB/s, peak RSS %.0f MiB (%.0f MiB before, %.0f MiB of it from files)", s.Name, rate, float64(peak)/MiB, float64(before)/MiB, float64(file)/MiB)
		for _, d := range digests {
			if err := removeBlob(s, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	rssR := rssRow(&rss)
	rssR.Ceiling = rss.max(ceilingIndex)
	rssR.Target = &Target{Text: fmt.Sprintf("peak RSS with %d concurrent %s pushes ≤ distribution", n, sizeName(size)), Met: rssR.Berth <= rssR.Dist}
	growR := Row{Metric: "RSS growth during the pushes (peak − before)", Unit: "MiB", Berth: growth.max(0), Dist: growth.max(1), Ceiling: growth.max(ceilingIndex), LowerIsBetter: true,
		Target: &Target{Text: fmt.Sprintf("memory the %d pushes take ≤ distribution's", n), Met: growth.max(0) <= growth.max(1)}}
	fileR := Row{Metric: "resident pages mapped from files before the pushes (the binary)", Unit: "MiB", Berth: fileRSS.max(0), Dist: fileRSS.max(1), Ceiling: fileRSS.max(ceilingIndex), LowerIsBetter: true}
	thrR := Row{Metric: "throughput", Unit: "MiB/s", Berth: thr.median(0), Dist: thr.median(1), Ceiling: thr.median(ceilingIndex)}
	if thrR.Ceiling > 0 {
		thrR.CeilingTarget = &Target{Text: fmt.Sprintf("%d concurrent %s pushes ≥ 0.9 of the ceiling server under the same concurrency", n, sizeName(size)), Met: thrR.Fraction() >= 0.9}
	}
	rep.Sections = append(rep.Sections, Section{
		Name:  name,
		About: fmt.Sprintf("%d clients at once each push a %s blob (monolithic) to a repository of its own. Throughput is all bytes over the wall time of the whole batch.", n, sizeName(size)),
		Rows:  []Row{thrR, rssR, growR, fileR},
	})
	return nil
}

// image is a small image: a config, one layer and the manifest naming them.
type image struct {
	config, layer, manifest []byte
	digest                  digest.Digest
}

// newImage returns an image with one 4 KiB layer, or with no layer at all
// (a config only, the smallest manifest a registry accepts) when layer is
// false.
func newImage(seed uint64, layer bool) image {
	var img image
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	layers := []desc{}
	diffIDs := "[]"
	if layer {
		img.layer = make([]byte, 4096)
		fillRandom(img.layer, seed)
		d := digest.FromBytes(img.layer)
		layers = append(layers, desc{mediaTypeLayer, d, len(img.layer)})
		diffIDs = fmt.Sprintf("[%q]", d)
	}
	img.config = []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":%s},"seed":%d}`, diffIDs, seed))
	m, err := json.Marshal(struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, mediaTypeManifest, desc{mediaTypeConfig, digest.FromBytes(img.config), len(img.config)}, layers})
	if err != nil {
		panic(err) // plain structs always marshal
	}
	img.manifest = m
	img.digest = digest.FromBytes(m)
	return img
}

// pushBlobs uploads the image's config and layer to repo.
func (img image) pushBlobs(ctx context.Context, c *Client, repo string) error {
	for _, b := range [][]byte{img.config, img.layer} {
		if b == nil {
			continue
		}
		if _, err := c.PushSmall(ctx, repo, b); err != nil {
			return err
		}
	}
	return nil
}

// wrkPair runs a 1 s warm-up and then a timed wrk run.
func (r *runner) wrkPair(ctx context.Context, o WrkOptions) (WrkResult, error) {
	warm := o
	warm.Duration = time.Second
	if _, err := RunWrk(ctx, r.tools.Wrk, warm); err != nil {
		return WrkResult{}, err
	}
	return RunWrk(ctx, r.tools.Wrk, o)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *runner) manifestWorkload(ctx context.Context, rep *Report) error {
	const repo, tag = "bench/manifest", "latest"
	img := newImage(r.salt+2, true)
	for i, c := range r.clients {
		if err := img.pushBlobs(ctx, c, repo); err != nil {
			return err
		}
		if err := c.PutManifest(ctx, repo, tag, mediaTypeManifest, img.manifest); err != nil {
			return err
		}
		got, err := c.GetManifest(ctx, repo, tag, acceptManifests)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, img.manifest) {
			return fmt.Errorf("%s serves a different manifest for %s:%s", r.servers[i].Name, repo, tag)
		}
	}
	if r.ceiling != nil {
		if err := r.ceilingClient.PutManifest(ctx, repo, tag, mediaTypeManifest, img.manifest); err != nil {
			return err
		}
	}
	if err := r.restart(ctx, "manifest"); err != nil {
		return err
	}
	var rss measurement
	var rows []Row
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		var rps, p50, p99 measurement
		r.logf("manifest %s by tag, %d connections", method, r.sz.WrkConns)
		err := r.alternateCeiling(ctx, "manifest "+method, false, &rss, func(i int, s *Server, _ *Client) error {
			path := "/v2/" + repo + "/manifests/" + tag
			hdr := map[string]string{"Accept": acceptManifests}
			var res WrkResult
			var err error
			if method == http.MethodHead {
				if _, err = RunHeadLoad(ctx, s.Addr, path, hdr, r.sz.WrkConns, time.Second); err == nil {
					res, err = RunHeadLoad(ctx, s.Addr, path, hdr, r.sz.WrkConns, r.sz.WrkDuration)
				}
			} else {
				res, err = r.wrkPair(ctx, WrkOptions{
					URL:         s.URL() + path,
					Header:      hdr,
					Threads:     1,
					Connections: r.sz.WrkConns,
					Duration:    r.sz.WrkDuration,
					ScriptDir:   r.dir,
				})
			}
			if err != nil {
				return err
			}
			rps.add(i, res.ReqPerSec)
			p50.add(i, ms(res.P50))
			p99.add(i, ms(res.P99))
			r.logf("  %-12s %8.0f req/s, p50 %.2f ms, p99 %.2f ms", s.Name, res.ReqPerSec, ms(res.P50), ms(res.P99))
			return nil
		})
		if err != nil {
			return err
		}
		rpsRow := Row{Metric: method + " by tag", Unit: "req/s", Berth: rps.median(0), Dist: rps.median(1), Ceiling: rps.median(ceilingIndex)}
		p99Row := Row{Metric: method + " by tag, p99 latency", Unit: "ms", Berth: p99.median(0), Dist: p99.median(1), Ceiling: p99.median(ceilingIndex), LowerIsBetter: true}
		if method == http.MethodGet {
			rpsRow.Target = &Target{Text: fmt.Sprintf("manifest GET by tag ≥ 3× distribution's req/s (%d connections)", r.sz.WrkConns), Met: rpsRow.Ratio() >= 3}
			p99Row.Target = &Target{Text: "manifest GET by tag p99 < 5 ms (berth)", Met: p99Row.Berth < 5}
			if rpsRow.Ceiling > 0 {
				rpsRow.CeilingTarget = &Target{Text: "manifest GET by tag ≥ 0.6 of the small-GET ceiling's req/s", Met: rpsRow.Fraction() >= 0.6}
				p99Row.CeilingTarget = &Target{Text: "manifest GET by tag p99 no worse than the small-GET ceiling's", Met: p99Row.Berth <= p99Row.Ceiling}
			}
		}
		rows = append(rows, rpsRow,
			Row{Metric: method + " by tag, p50 latency", Unit: "ms", Berth: p50.median(0), Dist: p50.median(1), Ceiling: p50.median(ceilingIndex), LowerIsBetter: true},
			p99Row)
	}
	virtual, err := r.virtualManifest(ctx, repo, tag)
	if err != nil {
		return err
	}
	if virtual != nil {
		rows = append(rows, *virtual)
	}
	rows = append(rows, rssRow(&rss))
	rep.Sections = append(rep.Sections, Section{
		Name:  fmt.Sprintf("Manifest by tag, %d connections", r.sz.WrkConns),
		About: "One image manifest (OCI, one layer) requested by tag: GET with wrk, HEAD with this program's own HTTP/1.1 load generator (wrk waits for the body that a HEAD answer's Content-Length announces, so it cannot measure HEAD). The two methods' figures are therefore not comparable with each other, only between servers.",
		Rows:  rows,
	})
	return nil
}

// virtualManifest measures berth's manifest GET by tag through a virtual
// registry (virtualPrefix over the hosted bench/ names) against the same
// manifest by its hosted name, alternating, on berth alone.
func (r *runner) virtualManifest(ctx context.Context, repo, tag string) (*Row, error) {
	if len(r.servers) == 0 || r.servers[0].Name != "berth" || !strings.HasPrefix(repo, hostedPrefix) {
		return nil, nil
	}
	s := r.servers[0]
	hdr := map[string]string{"Accept": acceptManifests}
	var hosted, virtual []float64
	r.logf("manifest GET by tag, hosted and through a virtual registry, %d connections", r.sz.WrkConns)
	for range r.cfg.Reps {
		for _, p := range []struct {
			path string
			into *[]float64
		}{
			{"/v2/" + repo + "/manifests/" + tag, &hosted},
			{"/v2/" + virtualPrefix + strings.TrimPrefix(repo, hostedPrefix) + "/manifests/" + tag, &virtual},
		} {
			res, err := r.wrkPair(ctx, WrkOptions{URL: s.URL() + p.path, Header: hdr, Threads: 1, Connections: r.sz.WrkConns, Duration: r.sz.WrkDuration, ScriptDir: r.dir})
			if err != nil {
				return nil, fmt.Errorf("virtual manifest GET: %w", err)
			}
			*p.into = append(*p.into, res.ReqPerSec)
			r.logf("  %-40s %8.0f req/s, p99 %.2f ms", p.path, res.ReqPerSec, ms(res.P99))
		}
	}
	row := Row{Metric: "GET by tag through a virtual registry", Unit: "req/s", Berth: Median(virtual), Dist: Median(hosted), Peer: "berth hosted"}
	row.Target = &Target{Text: "manifest GET by tag through a virtual registry within 10 % of a hosted name", Met: row.Ratio() >= 0.9}
	return &row, nil
}

// The names berth serves in the main phase: bench/ is a hosted registry,
// virtualPrefix a virtual one over it (berthMainConfig).
const (
	hostedPrefix  = "bench/"
	virtualPrefix = "virtual/"
)

// berthMainConfig is berth's configuration in the main phase.
const berthMainConfig = `registries:
  - name: bench
    type: hosted
    prefix: bench/
  - name: virtual
    type: virtual
    prefix: virtual/
    members: [bench]
`

func tagName(i int) string { return fmt.Sprintf("tag-%05d", i) }

func (r *runner) tagsWorkload(ctx context.Context, rep *Report) error {
	const repo = "bench/tags"
	n := r.sz.Tags
	img := newImage(r.salt+3, true)
	r.logf("tag list: creating %d tags", n)
	start := time.Now()
	// berth: the manifest by digest, with ?tag= in batches.
	bc := r.clients[0]
	if err := img.pushBlobs(ctx, bc, repo); err != nil {
		return err
	}
	const batch = 100
	for lo := 0; lo < n; lo += batch {
		var tags []string
		for i := lo; i < min(lo+batch, n); i++ {
			tags = append(tags, tagName(i))
		}
		if err := bc.PutManifest(ctx, repo, img.digest.String(), mediaTypeManifest, img.manifest, tags...); err != nil {
			return err
		}
	}
	r.logf("  berth: %s", time.Since(start).Round(time.Millisecond))
	// distribution: one tag through the API, copied for the others.
	start = time.Now()
	dc, ds := r.clients[1], r.servers[1]
	if err := img.pushBlobs(ctx, dc, repo); err != nil {
		return err
	}
	if err := dc.PutManifest(ctx, repo, tagName(0), mediaTypeManifest, img.manifest); err != nil {
		return err
	}
	tagsDir := filepath.Join(distributionRepoDir(ds.StorageRoot, repo), "_manifests", "tags")
	var dsts []string
	for i := 1; i < n; i++ {
		dsts = append(dsts, filepath.Join(tagsDir, tagName(i)))
	}
	if err := cloneTree(filepath.Join(tagsDir, tagName(0)), dsts, 4); err != nil {
		return fmt.Errorf("distribution tag fixture: %w", err)
	}
	r.logf("  distribution: %s", time.Since(start).Round(time.Millisecond))
	for i, c := range r.clients {
		got, err := c.TagCount(ctx, repo)
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%s lists %d tags, want %d", r.servers[i].Name, got, n)
		}
	}
	if err := r.restart(ctx, "tags"); err != nil {
		return err
	}
	var rps, p50, p99, rss measurement
	r.logf("tag list of %d tags, %d connections", n, r.sz.TagConns)
	err := r.alternate(ctx, "tag list", false, &rss, func(i int, s *Server, _ *Client) error {
		res, err := r.wrkPair(ctx, WrkOptions{
			URL:         s.URL() + "/v2/" + repo + "/tags/list",
			Threads:     1,
			Connections: r.sz.TagConns,
			Duration:    r.sz.WrkDuration,
			ScriptDir:   r.dir,
		})
		if err != nil {
			return err
		}
		rps.add(i, res.ReqPerSec)
		p50.add(i, ms(res.P50))
		p99.add(i, ms(res.P99))
		r.logf("  %-12s %8.1f req/s, p50 %.2f ms, p99 %.2f ms", s.Name, res.ReqPerSec, ms(res.P50), ms(res.P99))
		return nil
	})
	if err != nil {
		return err
	}
	rep.Sections = append(rep.Sections, Section{
		Name:  fmt.Sprintf("Tag list of %s tags, %d connections", group(fmt.Sprint(n)), r.sz.TagConns),
		About: fmt.Sprintf("wrk requests the whole tag list (no `n`) of a repository with %s tags.", group(fmt.Sprint(n))),
		Rows: []Row{
			{Metric: "tag list", Unit: "req/s", Berth: rps.median(0), Dist: rps.median(1)},
			{Metric: "tag list, p50 latency", Unit: "ms", Berth: p50.median(0), Dist: p50.median(1), LowerIsBetter: true},
			{Metric: "tag list, p99 latency", Unit: "ms", Berth: p99.median(0), Dist: p99.median(1), LowerIsBetter: true},
			rssRow(&rss),
		},
	})
	return nil
}

func repoName(i int) string { return fmt.Sprintf("repo-%06d", i) }

// mountAll creates repositories names[...] in berth with one cross-repository
// mount each of blob d from repository from, several at a time.
func mountAll(ctx context.Context, c *Client, from string, d digest.Digest, names []string) error {
	next := make(chan string)
	errs := make(chan error, fixtureConns)
	var wg sync.WaitGroup
	for range fixtureConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				if err := c.Mount(ctx, name, from, d); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for _, name := range names {
		select {
		case next <- name:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
		return err
	default:
		return nil
	}
}

func (r *runner) catalogWorkload(ctx context.Context, rep *Report) error {
	return r.catalogSizes(ctx, rep, r.sz.Repos, fmt.Sprintf("Catalog page-through, n=%d", r.sz.Page), true)
}

// catalogSizes fills the pair's catalogs to each of sizes (ascending) and
// times page-throughs; the largest size gets the ≥ 50× target when target
// is set. The section is called name.
func (r *runner) catalogSizes(ctx context.Context, rep *Report, sizes []int, name string, target bool) error {
	// Each repository is made by one cross-repository mount of a blob
	// pushed to the first. distribution lists a repository only once it
	// has a manifest, so there each one also gets the smallest manifest
	// (a config, no layers) by digest; the second repository, made so
	// through the API, is the template of all others.
	img := newImage(r.salt+4, false)
	first, second := repoName(0), repoName(1)
	ds := r.servers[1]
	// Clients change when the servers restart: take them afresh each time.
	cfg, err := r.clients[0].PushSmall(ctx, first, img.config)
	if err != nil {
		return err
	}
	if err := r.clients[0].Mount(ctx, second, first, cfg); err != nil {
		return err
	}
	if err := img.pushBlobs(ctx, r.clients[1], first); err != nil {
		return err
	}
	if err := r.clients[1].PutManifest(ctx, first, img.digest.String(), mediaTypeManifest, img.manifest); err != nil {
		return err
	}
	if err := r.clients[1].Mount(ctx, second, first, cfg); err != nil {
		return err
	}
	if err := r.clients[1].PutManifest(ctx, second, img.digest.String(), mediaTypeManifest, img.manifest); err != nil {
		return err
	}
	tmpl := distributionRepoDir(ds.StorageRoot, second)
	have := 2
	var rows []Row
	for k, size := range sizes {
		r.logf("catalog: creating %d repositories", size)
		var names, dirs []string
		for i := have; i < size; i++ {
			names = append(names, repoName(i))
			dirs = append(dirs, distributionRepoDir(ds.StorageRoot, repoName(i)))
		}
		start := time.Now()
		if err := mountAll(ctx, r.clients[0], first, cfg, names); err != nil {
			return fmt.Errorf("berth repository fixture: %w", err)
		}
		r.logf("  berth: %s", time.Since(start).Round(time.Millisecond))
		start = time.Now()
		if err := cloneTree(tmpl, dirs, 4); err != nil {
			return fmt.Errorf("distribution repository fixture: %w", err)
		}
		r.logf("  distribution: %s", time.Since(start).Round(time.Millisecond))
		have = size
		if err := r.restart(ctx, fmt.Sprintf("catalog-%d", size)); err != nil {
			return err
		}
		for i, c := range r.clients {
			got, _, err := c.PageCatalog(ctx, r.sz.Page)
			if err != nil {
				return err
			}
			if got != size {
				return fmt.Errorf("%s lists %d repositories, want %d", r.servers[i].Name, got, size)
			}
		}
		var rate, secs, rss measurement
		r.logf("catalog page-through of %d repositories, n=%d", size, r.sz.Page)
		err := r.alternate(ctx, "catalog", false, &rss, func(i int, s *Server, c *Client) error {
			start := time.Now()
			got, _, err := c.PageCatalog(ctx, r.sz.Page)
			el := time.Since(start)
			if err != nil {
				return err
			}
			if got != size {
				return fmt.Errorf("listed %d repositories, want %d", got, size)
			}
			rate.add(i, float64(size)/el.Seconds())
			secs.add(i, ms(el))
			r.logf("  %-12s %8.1f ms", s.Name, ms(el))
			return nil
		})
		if err != nil {
			return err
		}
		count := group(fmt.Sprint(size))
		rateRow := Row{Metric: fmt.Sprintf("page-through of %s repositories", count), Unit: "repos/s", Berth: rate.median(0), Dist: rate.median(1)}
		if target && k == len(sizes)-1 {
			rateRow.Target = &Target{Text: fmt.Sprintf("catalog page-through at %s repositories ≥ 50× distribution", count), Met: rateRow.Ratio() >= 50}
		}
		rssR := rssRow(&rss)
		rssR.Metric = fmt.Sprintf("peak RSS, %s repositories", count)
		rows = append(rows, rateRow,
			Row{Metric: fmt.Sprintf("time to page through %s repositories", count), Unit: "ms", Berth: secs.median(0), Dist: secs.median(1), LowerIsBetter: true},
			rssR)
	}
	rep.Sections = append(rep.Sections, Section{
		Name:  name,
		About: fmt.Sprintf("One client lists the whole catalog %d names at a time, following the Link headers.", r.sz.Page),
		Rows:  rows,
	})
	return nil
}
