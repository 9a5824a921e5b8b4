package metadata

import (
	"container/list"
	"context"
	"errors"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Notifier is a store that tells when the tags or manifests of a
// repository change, whoever changed them: this process, garbage
// collection, another process on the same database (where the store can
// tell: PostgreSQL notifies every replica; SQLite notices another process
// within a second).
type Notifier interface {
	// Changes calls fn after every committed change to the tags or
	// manifests of a repository, with its name; "" means any repository
	// may have changed (the store lost track for a while). fn must be
	// quick. stop ends the calls.
	Changes(fn func(repo string)) (stop func())
}

// Broadcast is the fan-out of change notifications a store keeps for its
// Changes method.
type Broadcast struct {
	mu   sync.Mutex
	next int
	subs map[int]func(string)
}

// Subscribe adds fn and returns the function that removes it.
func (b *Broadcast) Subscribe(fn func(string)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[int]func(string){}
	}
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}
}

// Notify calls every subscriber with repo.
func (b *Broadcast) Notify(repo string) {
	b.mu.Lock()
	subs := make([]func(string), 0, len(b.subs))
	for _, fn := range b.subs {
		subs = append(subs, fn)
	}
	b.mu.Unlock()
	for _, fn := range subs {
		fn(repo)
	}
}

// Listening reports whether anyone subscribed.
func (b *Broadcast) Listening() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

// DefaultCacheBytes bounds the manifests a Cache keeps.
const DefaultCacheBytes = 64 << 20

// Cache keeps the manifests the registry served most recently in memory,
// by tag and by digest, so that a manifest GET answered from it costs no
// database round trip. It is exact: every write through it drops what it
// kept of the repository before it returns, and the store's change
// notifications (Notifier) drop what other writers changed, so the cache
// never answers with a tag older than the store's view once the change
// is known here: at once in this process; within the notification's delay
// for other processes (and, when a store loses its notifications for a
// while, by the time it has them back and tells everything changed).
type Cache struct {
	ReadWriter
	max  int
	stop func()

	mu      sync.Mutex
	entries map[string]*list.Element // key → element of lru
	byRepo  map[string]map[string]struct{}
	lru     *list.List // of *cacheEntry, most recent first
	bytes   int
	// versions count the invalidations of each repository; epoch counts
	// those of everything. A read that began before an invalidation does
	// not store its (possibly stale) answer.
	versions map[string]uint64
	epoch    uint64
}

type cacheEntry struct {
	key, repo string
	m         *Manifest
	size      int
}

// NewCache returns rw with manifests cached, up to maxBytes of content
// (DefaultCacheBytes when 0), dropped on the changes n reports. Close stops
// the notifications.
func NewCache(rw ReadWriter, n Notifier, maxBytes int) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	c := &Cache{ReadWriter: rw, max: maxBytes, entries: map[string]*list.Element{}, byRepo: map[string]map[string]struct{}{},
		lru: list.New(), versions: map[string]uint64{}}
	if n != nil {
		c.stop = n.Changes(c.invalidate)
	}
	return c
}

// Close stops the change notifications.
func (c *Cache) Close() {
	if c.stop != nil {
		c.stop()
	}
}

// invalidate drops what is kept of repo ("" for everything).
func (c *Cache) invalidate(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if repo == "" {
		c.dropAll()
		return
	}
	c.versions[repo]++
	for key := range c.byRepo[repo] {
		c.remove(c.entries[key])
	}
	delete(c.byRepo, repo)
}

func (c *Cache) dropAll() {
	c.epoch++
	clear(c.versions)
	clear(c.entries)
	clear(c.byRepo)
	c.lru.Init()
	c.bytes = 0
}

func (c *Cache) remove(el *list.Element) {
	if el == nil {
		return
	}
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.entries, e.key)
	if keys := c.byRepo[e.repo]; keys != nil {
		delete(keys, e.key)
	}
	c.bytes -= e.size
}

// lookup returns the kept manifest of key, or the state a read must find
// unchanged to store its answer.
func (c *Cache) lookup(key, repo string) (m *Manifest, version, epoch uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, hit := c.entries[key]; hit {
		c.lru.MoveToFront(el)
		cp := *el.Value.(*cacheEntry).m
		return &cp, 0, 0, true
	}
	return nil, c.versions[repo], c.epoch, false
}

// keep stores m under key unless repo changed since the read began.
func (c *Cache) keep(key, repo string, m *Manifest, version, epoch uint64) {
	size := len(m.Content) + len(key) + 256
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch || c.versions[repo] != version || size > c.max/8 {
		return
	}
	if el, dup := c.entries[key]; dup {
		c.remove(el)
	}
	cp := *m
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, repo: repo, m: &cp, size: size})
	if c.byRepo[repo] == nil {
		c.byRepo[repo] = map[string]struct{}{}
	}
	c.byRepo[repo][key] = struct{}{}
	c.bytes += size
	for c.bytes > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *Cache) read(key, repo string, get func() (*Manifest, error)) (*Manifest, error) {
	m, version, epoch, ok := c.lookup(key, repo)
	if ok {
		return m, nil
	}
	m, err := get()
	if err == nil {
		c.keep(key, repo, m, version, epoch)
	}
	return m, err
}

// ResolveTag implements Reader, from memory when it can.
func (c *Cache) ResolveTag(ctx context.Context, repo, tag string) (*Manifest, error) {
	return c.read(repo+"\x00t\x00"+tag, repo, func() (*Manifest, error) { return c.ReadWriter.ResolveTag(ctx, repo, tag) })
}

// GetManifest implements Reader, from memory when it can.
func (c *Cache) GetManifest(ctx context.Context, repo string, d digest.Digest) (*Manifest, error) {
	return c.read(repo+"\x00d\x00"+string(d), repo, func() (*Manifest, error) { return c.ReadWriter.GetManifest(ctx, repo, d) })
}

// written drops repo's entries after a write through the cache (whatever
// its outcome: a failed write may still have committed).
func (c *Cache) written(repo string, err error) error {
	if err == nil || !errors.Is(err, ErrNotFound) {
		c.invalidate(repo)
	}
	return err
}

// PutManifest implements Writer.
func (c *Cache) PutManifest(ctx context.Context, repo string, m *Manifest, tags ...string) error {
	return c.written(repo, c.ReadWriter.PutManifest(ctx, repo, m, tags...))
}

// DeleteManifest implements Writer.
func (c *Cache) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return c.written(repo, c.ReadWriter.DeleteManifest(ctx, repo, d))
}

// DeleteTag implements Writer.
func (c *Cache) DeleteTag(ctx context.Context, repo, tag string) error {
	return c.written(repo, c.ReadWriter.DeleteTag(ctx, repo, tag))
}

// Stats reports what the cache holds: entries and bytes.
func (c *Cache) Stats() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
