package metadata

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// fakeStore answers ResolveTag and GetManifest from a map and counts the
// calls; hold, when set, blocks a read until it is closed.
type fakeStore struct {
	ReadWriter
	mu    sync.Mutex
	tags  map[string]*Manifest
	calls int
	hold  chan struct{}
	in    chan struct{}
}

func (f *fakeStore) ResolveTag(_ context.Context, repo, tag string) (*Manifest, error) {
	f.mu.Lock()
	f.calls++
	m, ok := f.tags[repo+":"+tag]
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		f.in <- struct{}{}
		<-hold
	}
	if !ok {
		return nil, ErrNotFound
	}
	return m, nil
}

func (f *fakeStore) DeleteTag(_ context.Context, repo, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tags, repo+":"+tag)
	return nil
}

func (f *fakeStore) set(repo, tag, content string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tags[repo+":"+tag] = &Manifest{Digest: digest.FromString(content), Content: []byte(content)}
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeNotifier hands the cache's callback to the test.
type fakeNotifier struct{ fn func(string) }

func (n *fakeNotifier) Changes(fn func(string)) func() { n.fn = fn; return func() {} }

func TestCache(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := &fakeStore{tags: map[string]*Manifest{}}
	n := &fakeNotifier{}
	c := NewCache(f, n, 1<<20)
	defer c.Close()
	get := func(repo, tag string) string {
		t.Helper()
		m, err := c.ResolveTag(ctx, repo, tag)
		if err != nil {
			return "error: " + err.Error()
		}
		return string(m.Content)
	}
	f.set("a", "v1", "one")
	if got := get("a", "v1"); got != "one" || f.count() != 1 {
		t.Fatalf("first read: %q after %d calls", got, f.count())
	}
	if got := get("a", "v1"); got != "one" || f.count() != 1 {
		t.Fatalf("second read: %q after %d calls, want an answer from memory", got, f.count())
	}
	// A change another writer made, told by the store.
	f.set("a", "v1", "two")
	n.fn("a")
	if got := get("a", "v1"); got != "two" {
		t.Fatalf("after a notification: %q", got)
	}
	// A write through the cache drops the repository at once.
	if err := c.DeleteTag(ctx, "a", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := get("a", "v1"); !strings.Contains(got, "not found") {
		t.Fatalf("after a delete through the cache: %q", got)
	}
	// "" drops everything.
	f.set("b", "v1", "b1")
	get("b", "v1")
	f.set("b", "v1", "b2")
	n.fn("")
	if got := get("b", "v1"); got != "b2" {
		t.Fatalf("after a notification of everything: %q", got)
	}

	// A read that began before a change does not keep its stale answer.
	f.set("c", "v1", "old")
	f.mu.Lock()
	f.hold, f.in = make(chan struct{}), make(chan struct{})
	f.mu.Unlock()
	done := make(chan string)
	go func() { done <- get("c", "v1") }()
	<-f.in // the read is in the store
	f.mu.Lock()
	f.tags["c:v1"] = &Manifest{Content: []byte("new")}
	hold := f.hold
	f.hold = nil
	f.mu.Unlock()
	n.fn("c")
	close(hold)
	if got := <-done; got != "old" {
		t.Fatalf("the racing read: %q", got)
	}
	if got := get("c", "v1"); got != "new" {
		t.Fatalf("after the racing read, the cache answers %q", got)
	}

	// Bounded: entries beyond the bytes go, least recently used first.
	small := NewCache(f, nil, 4096)
	for i := range 40 {
		tag := "t" + strings.Repeat("x", i)
		f.set("d", tag, strings.Repeat("m", 100))
		if _, err := small.ResolveTag(ctx, "d", tag); err != nil {
			t.Fatal(err)
		}
	}
	if _, bytes := small.Stats(); bytes > 4096 {
		t.Fatalf("the cache holds %d bytes, bound 4096", bytes)
	}
}
