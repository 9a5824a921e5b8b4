package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// WorkMetrics measures what Prometheus metrics cost: berth with its
// debug listener (metrics on) against berth without (off).
const WorkMetrics = "metrics"

// metricsWorkload serves manifest GETs by tag from two berth instances,
// one with metrics on and one without, alternating, and scrapes the first
// one's /metrics during each of its runs as Prometheus would.
func (r *runner) metricsWorkload(ctx context.Context, rep *Report) error {
	bin, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	debugAddr, err := freePort()
	if err != nil {
		return err
	}
	on := newConfiguredBerth(bin, filepath.Join(r.dir, "metrics-on"), "berth-metrics", "debug:\n  addr: "+debugAddr+"\n")
	off := newConfiguredBerth(bin, filepath.Join(r.dir, "metrics-off"), "berth", "log:\n  level: warn\n")
	servers := []*Server{on, off}
	if err := r.startServers(ctx, servers...); err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			_ = s.Stop()
		}
	}()
	const repo, tag = "bench/metrics", "latest"
	img := newImage(r.salt+11, true)
	for _, s := range servers {
		c := NewClient(s.URL(), 4)
		err := img.pushBlobs(ctx, c, repo)
		if err == nil {
			err = c.PutManifest(ctx, repo, tag, mediaTypeManifest, img.manifest)
		}
		var got []byte
		if err == nil {
			got, err = c.GetManifest(ctx, repo, tag, acceptManifests)
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if !bytes.Equal(got, img.manifest) {
			return fmt.Errorf("%s serves a different manifest for %s:%s", s.Name, repo, tag)
		}
	}

	var rps, p50, p99 measurement
	r.logf("metrics: manifest GET by tag, %d connections, metrics on and off", r.sz.WrkConns)
	for range r.cfg.Reps {
		for i, s := range servers {
			if err := ctx.Err(); err != nil {
				return err
			}
			scraped := make(chan error, 1)
			if s == on {
				// One scrape in the middle of the run, as Prometheus
				// scraping every few seconds would.
				go func() {
					time.Sleep(r.sz.WrkDuration/2 + time.Second)
					scraped <- scrape(ctx, "http://"+debugAddr+"/metrics")
				}()
			} else {
				scraped <- nil
			}
			res, err := r.wrkPair(ctx, WrkOptions{
				URL:         s.URL() + "/v2/" + repo + "/manifests/" + tag,
				Header:      map[string]string{"Accept": acceptManifests},
				Threads:     1,
				Connections: r.sz.WrkConns,
				Duration:    r.sz.WrkDuration,
				ScriptDir:   r.dir,
			})
			if err != nil {
				return fmt.Errorf("metrics on %s: %w", s.Name, err)
			}
			if err := <-scraped; err != nil {
				return err
			}
			rps.add(i, res.ReqPerSec)
			p50.add(i, ms(res.P50))
			p99.add(i, ms(res.P99))
			r.logf("  %-14s %8.0f req/s, p50 %.2f ms, p99 %.2f ms", s.Name, res.ReqPerSec, ms(res.P50), ms(res.P99))
		}
	}
	const peer = "metrics off"
	rpsRow := Row{Metric: "GET by tag", Unit: "req/s", Berth: rps.median(0), Dist: rps.median(1), Peer: peer}
	rpsRow.Target = &Target{Text: "manifest GET by tag with metrics on ≥ 95% of metrics off (req/s)", Met: rpsRow.Ratio() >= 0.95}
	rep.Sections = append(rep.Sections, Section{
		Name: fmt.Sprintf("Metrics on and off, manifest by tag, %d connections", r.sz.WrkConns),
		About: "Two berth instances serve the same manifest by tag: the berth column has the debug listener on (`debug.addr`: every request is counted and timed in Prometheus collectors, and /metrics is scraped once during each run), " +
			"the other column has no metrics. The access log is off in both (log level warn).",
		Rows: []Row{
			rpsRow,
			{Metric: "GET by tag, p50 latency", Unit: "ms", Berth: p50.median(0), Dist: p50.median(1), LowerIsBetter: true, Peer: peer},
			{Metric: "GET by tag, p99 latency", Unit: "ms", Berth: p99.median(0), Dist: p99.median(1), LowerIsBetter: true, Peer: peer},
		},
	})
	return nil
}

// scrape GETs a /metrics page and checks it counts manifest requests.
func scrape(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `berth_http_requests_total{code="200",method="GET",route="manifest"}`) {
		return fmt.Errorf("scraping %s: %s, without the manifest request counter", url, resp.Status)
	}
	return nil
}
