// Package bench measures berth against the CNCF distribution registry: both
// servers run on loopback, each on a fresh data directory on the same disk,
// and the same workloads run against them alternately. cmd/berth-bench is
// its command line; docs/BENCHMARKS.md holds its latest report.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Sizes are the sizes and counts of the workloads.
type Sizes struct {
	BigBlob     int64         // the blob pushed and pulled whole
	Chunk       int           // PATCH size of the chunked push
	Pushes      int           // concurrent pushes
	PushBlob    int64         // size of each concurrent push
	Tags        int           // tags in the tag list
	Repos       []int         // catalog sizes, ascending
	Page        int           // catalog page size (n)
	WrkDuration time.Duration // each timed wrk run
	WrkConns    int           // connections of the manifest runs
	TagConns    int           // connections of the tag list runs
	DiskBytes   int64         // size of the disk write test
	CopyImage   int64         // image copied by berth copy, crane and skopeo
	CacheLayer  int64         // large layer pulled through the caches
	S3Blob      int64         // blob pushed and pulled on MinIO and the cloud emulators
	PGRepos     int           // catalog size on PostgreSQL metadata
	UIRepos     int           // repositories behind the web UI's pages
	GCRepos     int           // repositories a collection removes tags from
}

// FullSizes are the workloads the targets are stated for.
func FullSizes() Sizes {
	return Sizes{
		BigBlob:     1 << 30,
		Chunk:       8 << 20,
		Pushes:      64,
		PushBlob:    16 << 20,
		Tags:        10000,
		Repos:       []int{10000, 100000},
		Page:        1000,
		WrkDuration: 5 * time.Second,
		WrkConns:    32,
		TagConns:    4,
		DiskBytes:   1 << 30,
		CopyImage:   1 << 30,
		CacheLayer:  256 << 20,
		S3Blob:      1 << 30,
		PGRepos:     100000,
		UIRepos:     100000,
		GCRepos:     2000,
	}
}

// QuickSizes shrink every workload for a smoke run of a minute or two.
func QuickSizes() Sizes {
	return Sizes{
		BigBlob:     64 << 20,
		Chunk:       8 << 20,
		Pushes:      16,
		PushBlob:    1 << 20,
		Tags:        500,
		Repos:       []int{500, 2000},
		Page:        100,
		WrkDuration: time.Second,
		WrkConns:    32,
		TagConns:    4,
		DiskBytes:   64 << 20,
		CopyImage:   64 << 20,
		CacheLayer:  32 << 20,
		S3Blob:      64 << 20,
		PGRepos:     2000,
		UIRepos:     2000,
		GCRepos:     300,
	}
}

// Workload names, for Config.Only.
const (
	WorkBlob       = "blob"
	WorkConcurrent = "concurrent"
	WorkManifest   = "manifest"
	WorkTags       = "tags"
	WorkCatalog    = "catalog"
	WorkCache      = "cache"
)

// Workloads lists every workload name in the order they run.
var Workloads = []string{WorkBlob, WorkConcurrent, WorkManifest, WorkTags, WorkCatalog, WorkCache, WorkCopy, WorkS3, WorkCloud, WorkPGCatalog, WorkUI, WorkGC, WorkMetrics, WorkAttacks}

// Config is one benchmark run.
type Config struct {
	Sizes Sizes
	Quick bool
	// Reps is how many times each workload runs on each server.
	Reps int
	// Dir is the parent of the run's temporary directory; "" is the
	// system's temporary directory.
	Dir string
	// Keep leaves the run's directory (data, logs) in place.
	Keep bool
	// Only, when not empty, names the workloads to run.
	Only []string
	// Berth, when set, is the berth binary to run instead of one built
	// from the checkout.
	Berth string
	// BerthCommand, when set, replaces the berth binary: it returns the
	// command serving dataDir on addr. label names the workload, for
	// per-workload profiles.
	BerthCommand func(addr, dataDir, label string) *exec.Cmd
	// Log receives progress.
	Log io.Writer
	// Self is this program's path: the ceiling server runs as it
	// (CeilingCommand). Without it there is no ceiling.
	Self string
}

func (c *Config) wants(name string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, name)
}

// Run builds and installs what it needs, runs the workloads and returns
// the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	start := time.Now()
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Reps < 1 {
		cfg.Reps = 1
	}
	for _, o := range cfg.Only {
		if !slices.Contains(Workloads, o) {
			return nil, fmt.Errorf("unknown workload %q (have %s)", o, strings.Join(Workloads, ", "))
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.Dir, "berth-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		fmt.Fprintf(cfg.Log, "data, logs and binaries stay in %s\n", dir)
	} else {
		defer func() {
			start := time.Now()
			if err := removeAll(dir, 4); err != nil {
				fmt.Fprintf(cfg.Log, "warning: removing %s: %v\n", dir, err)
			}
			fmt.Fprintf(cfg.Log, "removed the run's directory in %s\n", time.Since(start).Round(time.Second))
		}()
	}
	tools, err := InstallPeers(ctx, root, cfg.Log)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Berth != "":
		tools.Berth = cfg.Berth
	case cfg.BerthCommand == nil:
		if tools.Berth, err = BuildBerth(ctx, root, filepath.Join(dir, "bin"), cfg.Log); err != nil {
			return nil, err
		}
	}

	rep := &Report{
		Date:      start,
		Quick:     cfg.Quick,
		Reps:      cfg.Reps,
		Machine:   DescribeMachine(dir),
		PushBytes: cfg.Sizes.BigBlob,
	}
	fmt.Fprintln(cfg.Log, "measuring the machine's limits")
	if rep.Limits, err = MeasureLimits(dir, cfg.Sizes.DiskBytes); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Log, "  SHA-256 %.0f MiB/s, disk %.0f MiB/s (page cache), %.0f MiB/s (fsync)\n",
		rep.Limits.SHA256, rep.Limits.DiskBuffered, rep.Limits.DiskDurable)

	r := &runner{cfg: cfg, sz: cfg.Sizes, tools: tools, dir: dir, log: cfg.Log, salt: uint64(start.UnixNano())}
	defer r.stopAll()
	if err := r.workloads(ctx, rep); err != nil {
		return nil, err
	}
	rep.Method = method(cfg)
	rep.Duration = time.Since(start)
	return rep, nil
}

// runner holds the state of one run.
type runner struct {
	cfg   Config
	sz    Sizes
	tools Tools
	dir   string
	log   io.Writer
	salt  uint64

	servers []*Server // the pair under test: berth, then distribution
	clients []*Client
	started []*Server // every server started, for stopAll
	// ceiling is the bare server of the same requests (ceiling.go), run
	// beside the pair of the main phase; nil when there is none.
	ceiling       *Server
	ceilingClient *Client
}

// Index of the ceiling in a measurement, after berth (0) and
// distribution (1).
const ceilingIndex = 2

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, format+"\n", args...)
}

// startPair starts berth and distribution on fresh data directories named
// after phase.
func (r *runner) startPair(ctx context.Context, phase string) error {
	r.stopPair()
	bdir := filepath.Join(r.dir, phase+"-berth")
	ddir := filepath.Join(r.dir, phase+"-distribution")
	var env []string
	if phase == "main" {
		// A virtual registry over the hosted names, for the manifest
		// workload's comparison of the two.
		cfg := filepath.Join(r.dir, phase+"-berth.yaml")
		if err := os.WriteFile(cfg, []byte(berthMainConfig), 0o644); err != nil {
			return err
		}
		env = append(env, "BERTH_CONFIG="+cfg)
	}
	b := NewBerth(r.tools.Berth, bdir, env...)
	if r.cfg.BerthCommand != nil {
		b.command = func(addr string) *exec.Cmd { return r.cfg.BerthCommand(addr, bdir, b.label) }
	}
	d := NewDistribution(r.tools.Distribution, ddir)
	r.servers = []*Server{b, d}
	for _, s := range r.servers {
		s.label = phase
		if err := s.Start(ctx); err != nil {
			return err
		}
		r.started = append(r.started, s)
	}
	r.clients = []*Client{NewClient(b.URL(), 128), NewClient(d.URL(), 128)}
	return nil
}

// restart restarts both servers (fresh processes, so memory peaks start
// from zero) and labels them for profiles.
func (r *runner) restart(ctx context.Context, label string) error {
	for i, s := range r.servers {
		r.clients[i].Close()
		s.label = label
		if err := s.Restart(ctx); err != nil {
			return err
		}
		r.clients[i] = NewClient(s.URL(), 128)
	}
	if r.ceiling != nil {
		r.ceilingClient.Close()
		if err := r.ceiling.Restart(ctx); err != nil {
			return err
		}
		r.ceilingClient = NewClient(r.ceiling.URL(), 128)
	}
	return nil
}

func (r *runner) stopPair() {
	for i, s := range r.servers {
		r.clients[i].Close()
		if err := s.Stop(); err != nil {
			r.logf("warning: %v", err)
		}
	}
	r.servers, r.clients = nil, nil
	if r.ceiling != nil {
		r.ceilingClient.Close()
		if err := r.ceiling.Stop(); err != nil {
			r.logf("warning: %v", err)
		}
		r.ceiling, r.ceilingClient = nil, nil
	}
}

// startCeiling starts the ceiling server beside the pair, on a fresh
// directory named after phase.
func (r *runner) startCeiling(ctx context.Context, phase string) error {
	if r.cfg.Self == "" {
		return nil
	}
	c := NewCeiling(r.cfg.Self, filepath.Join(r.dir, phase+"-ceiling"))
	if err := c.Start(ctx); err != nil {
		return err
	}
	r.started = append(r.started, c)
	r.ceiling, r.ceilingClient = c, NewClient(c.URL(), 128)
	return nil
}

func (r *runner) stopAll() {
	r.stopPair()
	for _, s := range r.started {
		_ = s.Stop()
	}
}

// measurement collects one value per run and server.
type measurement struct {
	vals [3][]float64
}

func (m *measurement) add(server int, v float64) { m.vals[server] = append(m.vals[server], v) }
func (m *measurement) median(server int) float64 { return Median(m.vals[server]) }
func (m *measurement) max(server int) float64    { return Max(m.vals[server]) }

// alternate runs fn reps times on each server, alternating between them,
// and records each server's peak RSS of every run in rss (MiB). With
// restartEach the servers restart before each run.
func (r *runner) alternate(ctx context.Context, label string, restartEach bool, rss *measurement, fn func(i int, s *Server, c *Client) error) error {
	return r.alternateWith(ctx, label, restartEach, false, rss, fn)
}

// alternateCeiling is alternate with the ceiling as a third server (index
// ceilingIndex), when there is one.
func (r *runner) alternateCeiling(ctx context.Context, label string, restartEach bool, rss *measurement, fn func(i int, s *Server, c *Client) error) error {
	return r.alternateWith(ctx, label, restartEach, r.ceiling != nil, rss, fn)
}

func (r *runner) alternateWith(ctx context.Context, label string, restartEach, ceiling bool, rss *measurement, fn func(i int, s *Server, c *Client) error) error {
	servers, clients := r.servers, r.clients
	if ceiling {
		servers = append(slices.Clone(servers), r.ceiling)
		clients = append(slices.Clone(clients), r.ceilingClient)
	}
	for rep := range r.cfg.Reps {
		if restartEach {
			if err := r.restart(ctx, fmt.Sprintf("%s-%d", label, rep+1)); err != nil {
				return err
			}
			servers, clients = r.servers, r.clients
			if ceiling {
				servers = append(slices.Clone(servers), r.ceiling)
				clients = append(slices.Clone(clients), r.ceilingClient)
			}
		}
		for i, s := range servers {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.ResetPeakRSS(); err != nil {
				return err
			}
			if err := fn(i, s, clients[i]); err != nil {
				return fmt.Errorf("%s on %s: %w", label, s.Name, err)
			}
			peak, err := s.PeakRSS()
			if err != nil {
				return err
			}
			if rss != nil {
				rss.add(i, float64(peak)/MiB)
			}
		}
	}
	return nil
}

// rssRow reports the highest peak RSS seen in a workload's runs.
func rssRow(rss *measurement) Row {
	return Row{Metric: "peak RSS", Unit: "MiB", Berth: rss.max(0), Dist: rss.max(1), LowerIsBetter: true}
}

func (r *runner) workloads(ctx context.Context, rep *Report) error {
	if r.cfg.wants(WorkBlob) || r.cfg.wants(WorkConcurrent) || r.cfg.wants(WorkManifest) || r.cfg.wants(WorkTags) {
		if err := r.startPair(ctx, "main"); err != nil {
			return err
		}
		if err := r.startCeiling(ctx, "main"); err != nil {
			return err
		}
		steps := []struct {
			name string
			fn   func(context.Context, *Report) error
		}{
			{WorkBlob, r.blobWorkload},
			{WorkConcurrent, r.concurrentWorkload},
			{WorkManifest, r.manifestWorkload},
			{WorkTags, r.tagsWorkload},
		}
		for _, st := range steps {
			if !r.cfg.wants(st.name) {
				continue
			}
			if err := st.fn(ctx, rep); err != nil {
				return err
			}
		}
		r.stopPair()
		if !r.cfg.Keep {
			// Free the disk before the catalog fixtures.
			for _, p := range []string{"main-berth", "main-distribution"} {
				_ = removeAll(filepath.Join(r.dir, p), 4)
			}
		}
	}
	if r.cfg.wants(WorkCatalog) {
		if err := r.startPair(ctx, "catalog"); err != nil {
			return err
		}
		if err := r.catalogWorkload(ctx, rep); err != nil {
			return err
		}
		r.stopPair()
	}
	if r.cfg.wants(WorkCache) {
		if err := r.cacheWorkload(ctx, rep); err != nil {
			var nr notRun
			if !errors.As(err, &nr) {
				return err
			}
			rep.NotRun = append(rep.NotRun, nr.what+": not run: "+nr.why)
			r.logf("%s: not run: %s", nr.what, nr.why)
		}
	}
	for _, st := range []struct {
		name string
		fn   func(context.Context, *Report) error
	}{
		{WorkCopy, r.copyWorkload},
		{WorkS3, r.s3Workload},
		{WorkCloud, r.cloudWorkload},
		{WorkPGCatalog, r.pgCatalogWorkload},
		{WorkUI, r.uiWorkload},
		{WorkGC, r.gcWorkload},
		{WorkMetrics, r.metricsWorkload},
		{WorkAttacks, r.attacksWorkload},
	} {
		if !r.cfg.wants(st.name) {
			continue
		}
		if err := st.fn(ctx, rep); err != nil {
			var nr notRun
			if !errors.As(err, &nr) {
				return err
			}
			rep.NotRun = append(rep.NotRun, nr.what+": not run: "+nr.why)
			r.logf("%s: not run: %s", nr.what, nr.why)
		}
	}
	return nil
}

// notRun reports a workload that cannot run yet.
type notRun struct{ what, why string }

func (e notRun) Error() string { return e.what + ": not run: " + e.why }

func method(cfg Config) []string {
	sz := cfg.Sizes
	return []string{
		"Both servers listen on 127.0.0.1, each on its own fresh data directory under one temporary directory (same disk), and are restarted before each workload so that each workload's memory peak starts from a fresh process.",
		"berth is the binary built from this checkout (`go build ./cmd/berth`), run as `berth serve --addr … --data …` with `BERTH_LOG_LEVEL=warn` (no access log). distribution is v3.1.2 from `../shared/tools/install-peers.sh distribution`, configured with the filesystem driver, deletes enabled, log level error, access log off, upload purging off, and no blob descriptor cache (no `storage.cache.blobdescriptor`); berth runs with its defaults, which keep recently served manifests in memory (`manifests.cacheBytes`, 64 MiB).",
		"Both servers fsync blob data before acknowledging an upload (berth in its filesystem driver's Commit; distribution in its filesystem driver's Commit, and also on every Close of a chunk).",
		fmt.Sprintf("Uploads are driven by a Go load generator in this process. Every push sends content the server has not seen (pseudo-random, %s, with a counter in its last 8 bytes); blob files of earlier runs are deleted from disk between runs to bound disk use, and `sync` is called before each timed push so one run's writeback does not land in another's.", sizeName(sz.BigBlob)),
		"Monolithic push is the spec's POST + one PUT with the body; chunked push is POST, PATCHes with Content-Range, and a PUT with the digest. The GET is warm (the blob was just written) and discards the body; its content is verified once, untimed, before the timed runs.",
		fmt.Sprintf("Request rates come from wrk (`-t1 --latency`, %s per run after a 1 s warm-up; one wrk thread sends more requests than either server answers and leaves the other core to the server); latency percentiles are wrk's. HEAD is measured with this program's own minimal HTTP/1.1 load generator instead, the same way (closed loop, one request at a time per connection). Manifest requests send the Accept header of a containerd pull.", sz.WrkDuration),
		"Peak RSS is VmHWM from /proc/PID/status, reset by writing 5 to /proc/PID/clear_refs before each run; the table shows the highest peak of the workload's runs. For the concurrent pushes the servers are restarted before every run.",
		"Fixtures at scale: berth's tags are set through the API (PUT of the manifest by digest with `?tag=` in batches of 100) and its repositories are created through the API (one cross-repository mount POST each). distribution's are created from one tag or repository made through its API, whose directory tree is then copied under the other names (its link files hold digests only, so the copies are what the API writes); both are checked through each server's API (tag and catalog counts) before timing.",
		"The comparisons beyond distribution (sections copy, cache connector, MinIO, PostgreSQL) start their own servers: two berth instances for the copy; an upstream distribution plus a berth cache and a distribution proxy for the cache connector; one MinIO (install-peers.sh) with a bucket per registry; one PostgreSQL (Debian's, install-debs.sh postgresql, run as the postgres user with fsync off, trust authentication on loopback) for berth's metadata. In those sections the distribution column names its peer where it is not distribution.",
		"The machine is shared (2 cores, other builds and tests run at the same time), so figures carry noise; the load average at the start is in the machine table. Ratios from one run are more reliable than absolute figures across runs.",
	}
}
