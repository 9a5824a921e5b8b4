package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
)

// maxSyncTags bounds the tags one sync rule mirrors per run.
const maxSyncTags = 1000

// syncRule is a compiled SyncRule.
type syncRule struct {
	local, remote string
	tags          *glob.Pattern // nil: every tag
	filter        platformFilter
}

// syncer mirrors a cache's sync list on its interval, on one replica at a
// time (Options.TryLock). A run walks the rules in order; what is stored
// already is skipped (a tag costs a HEAD, a blob a metadata lookup), so a
// run cut short by a restart or a lost lock resumes, in effect, where it
// stopped.
type syncer struct {
	ca       *cache
	rules    []syncRule
	interval time.Duration
	now      chan struct{} // a run asked for now (Connector.SyncNow)

	mu      sync.Mutex
	status  SyncStatus
	runs    int
	decided int // times the loop decided to wait (tests)
	// notBefore is the earliest next run of this process.
	notBefore time.Time
	ran       *sync.Cond // broadcast after each run and decision
}

// SyncStatus is the state of a cache's scheduled sync, for the health
// report and metrics.
type SyncStatus struct {
	// Running reports a run in progress; Done and Total count its tags.
	Running bool `json:"running"`
	Done    int  `json:"done"`
	Total   int  `json:"total"`
	// LastStart and LastEnd are the times of the last run.
	LastStart *time.Time `json:"lastStart,omitempty"`
	LastEnd   *time.Time `json:"lastEnd,omitempty"`
	// LastResult is "ok", "failed: ..." (redacted: no repository names),
	// or "skipped: another replica holds the sync lock".
	LastResult string `json:"lastResult,omitempty"`
	// Tags, Manifests and Blobs count what the last run synced, fetched
	// and fetched.
	Tags      int `json:"tags"`
	Failed    int `json:"failed"`
	Manifests int `json:"manifests"`
	Blobs     int `json:"blobs"`
	// NextRun is when the next run starts.
	NextRun *time.Time `json:"nextRun,omitempty"`
}

func newSyncer(ca *cache, rules []SyncRule, interval time.Duration) *syncer {
	if interval <= 0 {
		interval = DefaultSyncInterval
	}
	s := &syncer{ca: ca, interval: interval, now: make(chan struct{}, 1)}
	s.ran = sync.NewCond(&s.mu)
	for _, r := range rules {
		remote, _ := ca.remoteName(r.Repository)
		sr := syncRule{local: ca.prefix + r.Repository, remote: remote, filter: newPlatformFilter(r.Platforms)}
		if r.Tags != "" {
			sr.tags, _ = glob.Compile(r.Tags)
		}
		s.rules = append(s.rules, sr)
	}
	return s
}

func (s *syncer) snapshot() SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *syncer) update(fn func(*SyncStatus)) {
	s.mu.Lock()
	fn(&s.status)
	s.mu.Unlock()
}

// loop runs the sync when it is due (at start, unless a run of any
// replica ended less than an interval ago) and then every interval, until
// Close. SyncNow starts one at once.
func (s *syncer) loop() {
	ctx := s.ca.env.ctx
	for {
		forced := false
		if wait := s.untilDue(ctx); wait > 0 {
			next := s.ca.env.now().Add(wait)
			s.update(func(st *SyncStatus) { st.NextRun = &next })
			s.signal()
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.now:
				t.Stop()
				forced = true
			case <-t.C:
			}
		}
		s.runOnce(ctx, forced)
		if ctx.Err() != nil {
			return
		}
	}
}

// syncState is what the replicas share of a cache's sync, in storage: when
// the last run started and ended. A run whose end is missing was cut short
// (a restart, a crash) and is resumed at once.
type syncState struct {
	LastStart time.Time `json:"lastStart"`
	LastEnd   time.Time `json:"lastEnd,omitzero"`
	Result    string    `json:"result,omitempty"`
}

// statePath is where the sync state of the cache lives in storage, beside
// (not among) the blobs and uploads.
func (s *syncer) statePath() string { return "/connectors/sync/" + s.ca.name + ".json" }

func (s *syncer) readState(ctx context.Context) (syncState, error) {
	var st syncState
	b, err := s.ca.env.blobs.Driver().GetContent(ctx, s.statePath())
	if err != nil {
		return st, err
	}
	if len(b) > 64<<10 {
		return st, fmt.Errorf("sync state %s: %d bytes", s.statePath(), len(b))
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

func (s *syncer) writeState(ctx context.Context, st syncState) {
	b, _ := json.Marshal(st)
	if err := s.ca.env.blobs.Driver().PutContent(ctx, s.statePath(), b); err != nil {
		s.ca.env.log.Warn("recording the sync state", "registry", s.ca.name, "err", err)
	}
}

// untilDue is how long until the next run is due: 0 when no run ended
// (none yet, or the last was cut short), else the rest of the interval
// since the last end.
func (s *syncer) untilDue(ctx context.Context) time.Duration {
	now := s.ca.env.now()
	s.mu.Lock()
	wait := s.notBefore.Sub(now)
	s.mu.Unlock()
	st, err := s.readState(ctx)
	if err == nil && !st.LastEnd.IsZero() && !st.LastEnd.Before(st.LastStart) {
		wait = max(wait, st.LastEnd.Add(s.interval).Sub(now))
	}
	return max(wait, 0)
}

// retryLocked is how soon a replica that found the sync lock held tries
// again (at most the interval).
const retryLocked = 5 * time.Minute

// setNotBefore keeps the next run of this process from starting before t,
// whatever storage says (it may be unreadable).
func (s *syncer) setNotBefore(t time.Time) {
	s.mu.Lock()
	s.notBefore = t
	s.mu.Unlock()
}

// signal wakes the waiters of waitRuns (tests).
func (s *syncer) signal() {
	s.mu.Lock()
	s.decided++
	s.ran.Broadcast()
	s.mu.Unlock()
}

// waitRuns waits until n runs (or attempts) ended.
func (s *syncer) waitRuns(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.runs < n {
		s.ran.Wait()
	}
}

// waitDecided waits until the loop decided n times to wait for a run.
func (s *syncer) waitDecided(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.decided < n {
		s.ran.Wait()
	}
}

// runOnce runs the sync once if this process gets the lock and no other
// replica ran it in the meantime (unless forced, by SyncNow).
func (s *syncer) runOnce(ctx context.Context, forced bool) {
	defer func() {
		s.mu.Lock()
		s.runs++
		s.ran.Broadcast()
		s.mu.Unlock()
	}()
	ca := s.ca
	env := ca.env
	start := env.now().UTC()
	if env.tryLock != nil {
		release, ok, err := env.tryLock(ctx, "sync-"+ca.name)
		if err != nil || !ok {
			result := "skipped: another replica holds the sync lock"
			if err != nil {
				result = "failed: the sync lock: " + err.Error()
				env.log.Warn("sync lock", "registry", ca.name, "err", err)
			}
			s.update(func(st *SyncStatus) { st.LastResult = result })
			s.setNotBefore(start.Add(min(s.interval, retryLocked)))
			return
		}
		defer release()
	}
	if !forced && s.untilDue(ctx) > 0 {
		s.update(func(st *SyncStatus) { st.LastResult = "skipped: another replica synced less than an interval ago" })
		return
	}
	s.writeState(ctx, syncState{LastStart: start, Result: "running"})
	s.update(func(st *SyncStatus) {
		*st = SyncStatus{Running: true, LastStart: &start, NextRun: st.NextRun}
	})
	env.log.Info("sync started", "registry", ca.name, "rules", len(s.rules))
	var firstErr error
	for _, r := range s.rules {
		if err := s.syncRule(ctx, r); err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	end := env.now().UTC()
	result := "ok"
	if firstErr != nil {
		result = "failed: " + redacted(firstErr)
	}
	if ctx.Err() != nil {
		result = "interrupted"
	}
	s.update(func(st *SyncStatus) {
		st.Running, st.LastEnd, st.LastResult = false, &end, result
	})
	s.setNotBefore(end.Add(s.interval))
	if ctx.Err() == nil {
		s.writeState(context.WithoutCancel(ctx), syncState{LastStart: start, LastEnd: end, Result: result})
	}
	st := s.snapshot()
	env.log.Info("sync finished", "registry", ca.name, "result", result, "tags", st.Tags, "failed", st.Failed,
		"manifests", st.Manifests, "blobs", st.Blobs, "duration", end.Sub(start).Round(time.Millisecond), "err", firstErr)
}

// syncRule mirrors the tags of one rule.
func (s *syncer) syncRule(ctx context.Context, r syncRule) error {
	ca := s.ca
	tags, err := ca.up.list(ctx, "/v2/"+r.remote+"/tags/list", "tags")
	ca.observe(err)
	if err != nil {
		s.update(func(st *SyncStatus) { st.Failed++ })
		return err
	}
	var keep []string
	for _, t := range tags {
		if registry.ValidTag(t) && (r.tags == nil || r.tags.Match(t)) {
			keep = append(keep, t)
		}
		if len(keep) >= maxSyncTags {
			break
		}
	}
	s.update(func(st *SyncStatus) { st.Total += len(keep) })
	var firstErr error
	for _, tag := range keep {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := s.syncTag(ctx, r, tag)
		s.update(func(st *SyncStatus) {
			st.Done++
			if err != nil {
				st.Failed++
			} else {
				st.Tags++
			}
		})
		if err != nil {
			ca.env.log.Warn("sync of a tag failed", "registry", ca.name, "repo", r.local, "tag", tag, "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// syncTag brings one tag in line with the upstream, then fetches what
// its manifest needs (the kept platforms of an index).
func (s *syncer) syncTag(ctx context.Context, r syncRule, tag string) error {
	ca := s.ca
	err := ca.run(ctx, "t\x00"+r.local+"\x00"+tag, func(ctx context.Context) error {
		// A sync revalidates however fresh the tag is.
		ca.fresh.delete(r.local + ":" + tag)
		return ca.syncTag(ctx, r.local, r.remote, tag)
	})
	if err != nil {
		return err
	}
	m, err := ca.env.meta.ResolveTag(ctx, r.local, tag)
	if err != nil {
		return err
	}
	return s.fill(ctx, r, m, 0)
}

// fill fetches the blobs of m and, for an index, its kept children.
func (s *syncer) fill(ctx context.Context, r syncRule, m *metadata.Manifest, depth int) error {
	ca := s.ca
	if mediatype.IsIndex(m.MediaType) {
		if depth > 0 {
			return nil // an index in an index: nothing a platform picks
		}
		var firstErr error
		for _, d := range r.filter.children(m) {
			child, err := s.manifest(ctx, r, d)
			if err == nil {
				err = s.fill(ctx, r, child, depth+1)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return firstErr
	}
	p := ca.prefetcher
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, d := range m.Blobs {
		if _, err := ca.env.meta.BlobSize(ctx, r.local, d); err == nil {
			continue
		}
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-p.sem }()
			err := ca.prefetchBlob(ctx, r.local, r.remote, d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			s.update(func(st *SyncStatus) { st.Blobs++ })
		}()
	}
	wg.Wait()
	return firstErr
}

// manifest returns child manifest d of r's repository, fetching it if it
// is not stored.
func (s *syncer) manifest(ctx context.Context, r syncRule, d digest.Digest) (*metadata.Manifest, error) {
	ca := s.ca
	if m, err := ca.env.meta.GetManifest(ctx, r.local, d); err == nil {
		return m, nil
	}
	if _, err := ca.ensureManifest(ctx, r.local, r.remote, d.String()); err != nil {
		return nil, err
	}
	s.update(func(st *SyncStatus) { st.Manifests++ })
	m, err := ca.env.meta.GetManifest(ctx, r.local, d)
	if err != nil {
		return nil, fmt.Errorf("child manifest %s: %w", d, err)
	}
	return m, nil
}

// SyncNow starts the scheduled sync of the named cache now, unless a run
// is in progress. It reports false when the cache has no sync list.
func (c *Connector) SyncNow(name string) bool {
	e := c.byName[name]
	if e == nil || e.cache == nil || e.cache.sync == nil {
		return false
	}
	select {
	case e.cache.sync.now <- struct{}{}:
	default:
	}
	return true
}
