package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// WorkGC is the workload of pushes during a garbage collection.
const WorkGC = "gc"

// gcConfig keeps one tag per repository under gc/, so a collection has
// tags to remove in every one of them (write transactions, as retention
// does), beside the pushes it must not hold up.
const gcConfig = `retention:
  - repositories: ["gc/**"]
    keepLast: 1
`

// gcWorkload measures the latency of pushes (a small blob and a manifest
// each) on SQLite while `berth gc` collects on the same database, against
// the same pushes with no collection running.
func (r *runner) gcWorkload(ctx context.Context, rep *Report) error {
	b, stop, err := r.startLoneBerth(ctx, "gc", gcConfig)
	if err != nil {
		return err
	}
	defer stop()
	c := NewClient(b.URL(), 128)
	defer c.Close()

	repos, tags := r.sz.GCRepos, 20
	r.logf("gc: seeding %d repositories of %d tags", repos, tags)
	img := newImage(r.salt+21, false)
	for i := range repos {
		repo := fmt.Sprintf("gc/repo-%05d", i)
		if err := img.pushBlobs(ctx, c, repo); err != nil {
			return err
		}
		names := make([]string, tags)
		for j := range names {
			names[j] = fmt.Sprintf("t%02d", j)
		}
		if err := c.PutManifest(ctx, repo, img.digest.String(), mediaTypeManifest, img.manifest, names...); err != nil {
			return err
		}
	}

	var quiet, during []float64
	var mu sync.Mutex
	n := 0
	push := func(into *[]float64) error {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		content := []byte(fmt.Sprintf("gc workload push %d %d", r.salt, k))
		start := time.Now()
		repo := fmt.Sprintf("push/repo-%03d", k%50)
		if _, err := c.PushSmall(ctx, repo, content); err != nil {
			return err
		}
		one := newImage(r.salt+uint64(1000+k), false)
		if err := one.pushBlobs(ctx, c, repo); err != nil {
			return err
		}
		if err := c.PutManifest(ctx, repo, "latest", mediaTypeManifest, one.manifest); err != nil {
			return err
		}
		mu.Lock()
		*into = append(*into, ms(time.Since(start)))
		mu.Unlock()
		return nil
	}
	// Pushes from two clients at once, for a while.
	pushFor := func(d time.Duration, into *[]float64, until <-chan struct{}) error {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					if until != nil {
						select {
						case <-until:
							return
						default:
						}
					}
					if err := push(into); err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		return errorsJoin(errs)
	}
	r.logf("gc: pushes with no collection")
	if err := pushFor(r.sz.WrkDuration, &quiet, nil); err != nil {
		return err
	}
	r.logf("gc: pushes while berth gc collects")
	berth, err := r.berthBinary(ctx) // built already for the server
	if err != nil {
		return err
	}
	gc := exec.CommandContext(ctx, berth, "gc", "--config", filepath.Join(b.Dir, "berth.yaml"), "--data", b.Dir)
	gc.Env = append(cleanEnv("BERTH_"), "BERTH_LOG_LEVEL=warn")
	var out bytes.Buffer
	gc.Stdout, gc.Stderr = &out, &out
	start := time.Now()
	if err := gc.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	var gcErr error
	go func() { gcErr = gc.Wait(); close(done) }()
	if err := pushFor(10*time.Minute, &during, done); err != nil {
		<-done
		return err
	}
	<-done
	took := time.Since(start)
	if gcErr != nil {
		return fmt.Errorf("berth gc: %v\n%s", gcErr, out.String())
	}
	r.logf("  collection took %v; %d pushes during it, %d without", took.Round(time.Millisecond), len(during), len(quiet))
	if len(during) < 20 {
		return notRun{what: "pushes during a garbage collection", why: fmt.Sprintf("the collection took %v, too short for a latency (%d pushes)", took, len(during))}
	}
	p99q, p99d := percentile(quiet, 99), percentile(during, 99)
	row := Row{Metric: "push p99 latency during a collection", Unit: "ms", Berth: p99d, Dist: p99q, Peer: "no collection", LowerIsBetter: true}
	row.Target = &Target{Text: "GC on SQLite: pushes during a collection see p99 latency ≤ 2× of pushes without one", Met: p99d <= 2*p99q}
	rep.Sections = append(rep.Sections, Section{
		Name: "Pushes during a garbage collection (SQLite)",
		About: fmt.Sprintf("berth alone, on SQLite, with %d repositories of %d tags each and a retention rule keeping one tag per repository, so a collection removes tags in every repository (%d write transactions). Two clients push a small blob, a config and a manifest each, in a loop: first with no collection, then while `berth gc` (another process, on the same database) collects; the collection took %v. The distribution column holds berth's pushes with no collection.",
			repos, tags, repos, took.Round(time.Millisecond)),
		Rows: []Row{
			row,
			{Metric: "push p50 latency during a collection", Unit: "ms", Berth: percentile(during, 50), Dist: percentile(quiet, 50), Peer: "no collection", LowerIsBetter: true},
		},
	})
	return nil
}

// percentile returns the p-th percentile of vs (nearest rank).
func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func errorsJoin(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
