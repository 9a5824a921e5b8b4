package metadatatest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/metadata"
)

// opsTests are the suite's tests of the optional capabilities that
// operating berth needs: metadata.EventQueue and metadata.Stater. A store
// without a capability skips its tests.
var opsTests = []struct {
	name string
	fn   func(t *testing.T, s metadata.Store)
}{
	{"EventsWithWrites", testEventsWithWrites},
	{"EventsClaim", testEventsClaim},
	{"EventsRetryAndRelease", testEventsRetryAndRelease},
	{"EventsLeaseExpiry", testEventsLeaseExpiry},
	{"EventsConcurrentClaims", testEventsConcurrentClaims},
	{"EventsTrim", testEventsTrim},
	{"Stats", testStats},
}

func eventQueue(t *testing.T, s metadata.Store) metadata.EventQueue {
	t.Helper()
	q, ok := s.(metadata.EventQueue)
	if !ok {
		t.Skipf("%T is no metadata.EventQueue", s)
	}
	return q
}

// event returns an event fixture for endpoint.
func event(endpoint, what string) metadata.Event {
	return metadata.Event{Endpoint: endpoint, Payload: []byte(`{"what":"` + what + `"}`)}
}

// payloads returns the payloads of claimed events, in order.
func payloads(evs []metadata.QueuedEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, string(e.Payload))
	}
	return out
}

func wantPending(t *testing.T, q metadata.EventQueue, want map[string]int64) {
	t.Helper()
	got, err := q.PendingEvents(t.Context())
	if err != nil {
		t.Fatalf("PendingEvents: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("PendingEvents = %v, want %v", got, want)
	}
}

func claim(t *testing.T, q metadata.EventQueue, endpoint, owner string, n int, lease time.Duration) []metadata.QueuedEvent {
	t.Helper()
	evs, err := q.ClaimEvents(t.Context(), endpoint, owner, n, lease)
	if err != nil {
		t.Fatalf("ClaimEvents(%s, %s): %v", endpoint, owner, err)
	}
	return evs
}

// testEventsWithWrites checks that the events a write's context carries
// are queued with a committed write, and only then.
func testEventsWithWrites(t *testing.T, s metadata.Store) {
	q := eventQueue(t, s)
	ctx := t.Context()
	with := func(what string) context.Context {
		return metadata.WithEvents(ctx, event("hook", what), event("audit", what))
	}
	layer := blob("events-layer")
	img := manifest("events-image", withBlobs(layer))

	must(t, s.LinkBlob(with("link"), "app", layer, 10, nil))
	must(t, s.PutManifest(with("put"), "app", img, "v1", "v2"))
	must(t, s.DeleteTag(with("untag"), "app", "v2"))
	wantPending(t, q, map[string]int64{"hook": 3, "audit": 3})

	// Failed writes queue nothing.
	wantErr(t, "DeleteTag of an unknown tag", s.DeleteTag(with("bad"), "app", "nope"), metadata.ErrNotFound)
	wantErr(t, "DeleteManifest of an unknown manifest", s.DeleteManifest(with("bad"), "app", blob("nope")), metadata.ErrNotFound)
	wantErr(t, "DeleteBlob of an unknown blob", s.DeleteBlob(with("bad"), "app", blob("nope")), metadata.ErrNotFound)
	wantErr(t, "DeleteTag in an unknown repository", s.DeleteTag(with("bad"), "nowhere", "v1"), metadata.ErrNotFound)
	wantPending(t, q, map[string]int64{"hook": 3, "audit": 3})

	must(t, s.DeleteManifest(with("delete"), "app", img.Digest))
	must(t, s.DeleteBlob(with("unlink"), "app", layer))
	// A write without events queues none.
	must(t, s.PutBlob(ctx, "app", layer, 10))
	wantPending(t, q, map[string]int64{"hook": 5, "audit": 5})

	got := claim(t, q, "hook", "me", 100, time.Minute)
	want := []string{`{"what":"link"}`, `{"what":"put"}`, `{"what":"untag"}`, `{"what":"delete"}`, `{"what":"unlink"}`}
	if !slices.Equal(payloads(got), want) {
		t.Errorf("claimed %v, want %v (in the order of the writes)", payloads(got), want)
	}
	for i, e := range got {
		if e.Endpoint != "hook" || e.Attempts != 1 || e.CreatedAt.IsZero() {
			t.Errorf("claimed event %d = %+v; want endpoint hook, 1 attempt, a creation time", i, e)
		}
		if i > 0 && e.ID <= got[i-1].ID {
			t.Errorf("event ids %d then %d: want increasing", got[i-1].ID, e.ID)
		}
	}
}

// testEventsClaim checks claims: by endpoint, oldest first, bounded,
// exclusive while leased, completed only by their owner.
func testEventsClaim(t *testing.T, s metadata.Store) {
	q := eventQueue(t, s)
	ctx := t.Context()
	must(t, q.EnqueueEvents(ctx))
	for i := range 5 {
		must(t, q.EnqueueEvents(ctx, event("a", fmt.Sprint(i)), event("b", fmt.Sprint(i))))
	}
	wantPending(t, q, map[string]int64{"a": 5, "b": 5})

	first := claim(t, q, "a", "one", 2, time.Minute)
	if got, want := payloads(first), []string{`{"what":"0"}`, `{"what":"1"}`}; !slices.Equal(got, want) {
		t.Fatalf("first claim = %v, want %v", got, want)
	}
	second := claim(t, q, "a", "two", 10, time.Minute)
	if got, want := payloads(second), []string{`{"what":"2"}`, `{"what":"3"}`, `{"what":"4"}`}; !slices.Equal(got, want) {
		t.Fatalf("second claim = %v, want %v (what the first holds is leased)", got, want)
	}
	if evs := claim(t, q, "a", "three", 10, time.Minute); len(evs) != 0 {
		t.Errorf("a claim while every event is leased got %v", payloads(evs))
	}

	ids := func(evs []metadata.QueuedEvent) []int64 {
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	// Completing another owner's events does nothing.
	must(t, q.CompleteEvents(ctx, "two", ids(first)))
	wantPending(t, q, map[string]int64{"a": 5, "b": 5})
	must(t, q.CompleteEvents(ctx, "one", ids(first)))
	must(t, q.CompleteEvents(ctx, "one", nil))
	wantPending(t, q, map[string]int64{"a": 3, "b": 5})

	n, err := q.DropEvents(ctx, "b")
	if err != nil || n != 5 {
		t.Errorf("DropEvents = %d, %v; want 5", n, err)
	}
	wantPending(t, q, map[string]int64{"a": 3})
	must(t, q.CompleteEvents(ctx, "two", ids(second)))
	wantPending(t, q, map[string]int64{})
}

// testEventsTrim checks that trimming an endpoint's queue keeps its newest
// events, in order, and leaves the other endpoints alone.
func testEventsTrim(t *testing.T, s metadata.Store) {
	q := eventQueue(t, s)
	ctx := t.Context()
	for i := range 10 {
		must(t, q.EnqueueEvents(ctx, event("a", fmt.Sprint(i)), event("b", fmt.Sprint(i))))
	}
	for _, c := range []struct {
		keep, removed int64
	}{{20, 0}, {10, 0}, {4, 6}, {4, 0}} {
		if n, err := q.TrimEvents(ctx, "a", c.keep); err != nil || n != c.removed {
			t.Errorf("TrimEvents(a, %d) = %d, %v; want %d", c.keep, n, err, c.removed)
		}
	}
	wantPending(t, q, map[string]int64{"a": 4, "b": 10})
	got := payloads(claim(t, q, "a", "one", 10, time.Minute))
	want := []string{`{"what":"6"}`, `{"what":"7"}`, `{"what":"8"}`, `{"what":"9"}`}
	if !slices.Equal(got, want) {
		t.Errorf("after trimming to 4: %v, want the newest 4 %v", got, want)
	}
	if n, err := q.TrimEvents(ctx, "b", 0); err != nil || n != 10 {
		t.Errorf("TrimEvents(b, 0) = %d, %v; want 10", n, err)
	}
	if n, err := q.TrimEvents(ctx, "none", 0); err != nil || n != 0 {
		t.Errorf("TrimEvents of an endpoint with no events = %d, %v; want 0", n, err)
	}
	wantPending(t, q, map[string]int64{"a": 4})
}

// testEventsRetryAndRelease checks that a failed delivery waits for its
// retry time, and that a stopping process hands its events back.
func testEventsRetryAndRelease(t *testing.T, s metadata.Store) {
	q := eventQueue(t, s)
	ctx := t.Context()
	must(t, q.EnqueueEvents(ctx, event("a", "x"), event("a", "y")))

	evs := claim(t, q, "a", "one", 1, time.Minute)
	if len(evs) != 1 {
		t.Fatalf("claimed %d events, want 1", len(evs))
	}
	// Not due for an hour: the other one is claimed, not this one.
	must(t, q.RetryEvents(ctx, "one", []int64{evs[0].ID}, time.Hour, "HTTP 500"))
	other := claim(t, q, "a", "two", 10, time.Minute)
	if got := payloads(other); !slices.Equal(got, []string{`{"what":"y"}`}) {
		t.Fatalf("claim after a retry in an hour = %v, want only y", got)
	}
	must(t, q.ReleaseEvents(ctx, "two"))
	again := claim(t, q, "a", "three", 10, time.Minute)
	if got := payloads(again); !slices.Equal(got, []string{`{"what":"y"}`}) || again[0].Attempts != 2 {
		t.Fatalf("claim after release = %+v, want y on its second attempt", again)
	}

	// Due at once after a retry with no delay, counting attempts.
	must(t, q.RetryEvents(ctx, "three", []int64{again[0].ID}, 0, "refused"))
	last := claim(t, q, "a", "four", 10, time.Minute)
	if got := payloads(last); !slices.Equal(got, []string{`{"what":"y"}`}) || last[0].Attempts != 3 {
		t.Fatalf("claim after a retry without delay = %+v, want y on its third attempt", last)
	}
	// A retry by another owner changes nothing.
	must(t, q.RetryEvents(ctx, "one", []int64{last[0].ID}, 0, "not mine"))
	if evs := claim(t, q, "a", "five", 10, time.Minute); len(evs) != 0 {
		t.Errorf("claimed %v, leased to four", payloads(evs))
	}
	wantPending(t, q, map[string]int64{"a": 2})
}

// testEventsLeaseExpiry checks that the events of a process that died are
// claimed again once their lease ran out, and that the dead process can no
// longer complete them.
func testEventsLeaseExpiry(t *testing.T, s metadata.Store) {
	q := eventQueue(t, s)
	ctx := t.Context()
	must(t, q.EnqueueEvents(ctx, event("a", "x")))
	dead := claim(t, q, "a", "dead", 10, 50*time.Millisecond)
	if len(dead) != 1 {
		t.Fatalf("claimed %d events, want 1", len(dead))
	}
	var next []metadata.QueuedEvent
	deadline := time.Now().Add(10 * time.Second)
	for len(next) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not claimable 10s after its 50ms lease")
		}
		next = claim(t, q, "a", "alive", 10, time.Minute)
	}
	if next[0].ID != dead[0].ID || next[0].Attempts != 2 {
		t.Errorf("claimed %+v after the lease, want the same event on its second attempt", next[0])
	}
	must(t, q.CompleteEvents(ctx, "dead", []int64{dead[0].ID}))
	wantPending(t, q, map[string]int64{"a": 1})
	must(t, q.CompleteEvents(ctx, "alive", []int64{next[0].ID}))
	wantPending(t, q, map[string]int64{})
}

// testEventsConcurrentClaims checks that concurrent claims never hand one
// event to two owners.
func testEventsConcurrentClaims(t *testing.T, s metadata.Store) {
	q := eventQueue(t, s)
	ctx := t.Context()
	const total = 60
	for i := range total {
		must(t, q.EnqueueEvents(ctx, event("a", fmt.Sprint(i))))
	}
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				evs, err := q.ClaimEvents(ctx, "a", owner, 4, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(evs) == 0 {
					return
				}
				var ids []int64
				mu.Lock()
				for _, e := range evs {
					if prev, dup := seen[e.ID]; dup {
						errs <- fmt.Errorf("event %d claimed by %s and %s", e.ID, prev, owner)
					}
					seen[e.ID] = owner
					ids = append(ids, e.ID)
				}
				mu.Unlock()
				if err := q.CompleteEvents(ctx, owner, ids); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != total {
		t.Errorf("%d events claimed, want %d", len(seen), total)
	}
	wantPending(t, q, map[string]int64{})
}

// testStats checks the counts against what was written.
func testStats(t *testing.T, s metadata.Store) {
	st, ok := s.(metadata.Stater)
	if !ok {
		t.Skipf("%T is no metadata.Stater", s)
	}
	ctx := t.Context()
	stats := func() metadata.Stats {
		t.Helper()
		got, err := st.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return got
	}
	if got := stats(); got != (metadata.Stats{}) {
		t.Errorf("Stats of an empty store = %+v, want zeros", got)
	}
	shared, other := blob("stats-shared"), blob("stats-other")
	must(t, s.PutBlob(ctx, "a", shared, 100))
	must(t, s.PutBlob(ctx, "b", shared, 100))
	must(t, s.PutBlob(ctx, "b", other, 5))
	img := manifest("stats-image", withBlobs(shared))
	must(t, s.PutManifest(ctx, "a", img, "v1", "latest"))
	must(t, s.PutManifest(ctx, "b", img, "v1"))
	want := metadata.Stats{Repositories: 2, Manifests: 2, Tags: 3, Blobs: 2, BlobBytes: 105}
	if got := stats(); got != want {
		t.Errorf("Stats = %+v, want %+v (a blob in two repositories counts once)", got, want)
	}
	must(t, s.DeleteManifest(ctx, "b", img.Digest))
	must(t, s.DeleteBlob(ctx, "b", other))
	want = metadata.Stats{Repositories: 2, Manifests: 1, Tags: 2, Blobs: 1, BlobBytes: 100}
	if got := stats(); got != want {
		t.Errorf("Stats after deletes = %+v, want %+v", got, want)
	}
}
