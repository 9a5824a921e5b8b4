package connector

import (
	"strings"
	"sync"
	"time"
)

// ttlMap is a bounded map whose entries expire. When full, expired entries
// go first, then arbitrary ones: it is a cache, and forgetting an entry
// only costs an upstream request.
type ttlMap[V any] struct {
	mu  sync.Mutex
	max int
	m   map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLMap[V any](max int) *ttlMap[V] {
	return &ttlMap[V]{max: max, m: map[string]ttlEntry[V]{}}
}

// get returns the live value of key.
func (t *ttlMap[V]) get(key string, now time.Time) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v under key until expires; an expiry not after now stores
// nothing.
func (t *ttlMap[V]) put(key string, v V, now, expires time.Time) {
	if !now.Before(expires) {
		t.delete(key)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; !ok && len(t.m) >= t.max {
		t.evict(now)
	}
	t.m[key] = ttlEntry[V]{v, expires}
}

func (t *ttlMap[V]) evict(now time.Time) {
	for k, e := range t.m {
		if !now.Before(e.expires) {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) < t.max*9/10 {
			break
		}
		delete(t.m, k)
	}
}

func (t *ttlMap[V]) delete(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// deletePrefix removes every key starting with prefix.
func (t *ttlMap[V]) deletePrefix(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.m {
		if strings.HasPrefix(k, prefix) {
			delete(t.m, k)
		}
	}
}
