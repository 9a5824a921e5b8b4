package auth

import (
	"sync"
	"time"
)

// Limiter slows down password guessing. Each key (a client address, a user
// name) has a bucket of Burst failures that refills at Rate per minute;
// while a key's bucket is empty, logins for it are refused without looking
// at the password. Successful logins cost nothing. Memory is bounded: at
// most maxKeys keys are tracked, and when the table is full the key that
// failed longest ago is forgotten.
type Limiter struct {
	burst   float64
	perSec  float64
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
	last   time.Time // of the last failure
}

// defaultLimiterKeys bounds the keys a Limiter tracks.
const defaultLimiterKeys = 10000

// NewLimiter returns a limiter allowing burst failures per key, refilled
// at perMinute a minute. burst <= 0 disables it.
func NewLimiter(burst int, perMinute float64) *Limiter {
	return &Limiter{
		burst:   float64(burst),
		perSec:  perMinute / 60,
		maxKeys: defaultLimiterKeys,
		now:     time.Now,
		buckets: map[string]*bucket{},
	}
}

// refill brings b up to date and reports its tokens.
func (l *Limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = min(l.burst, b.tokens+d*l.perSec)
	}
	b.at = now
}

// Wait returns how long the caller must wait before a login for any of
// keys is judged again; zero when it may proceed.
func (l *Limiter) Wait(keys ...string) time.Duration {
	if l == nil || l.burst <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		b, ok := l.buckets[k]
		if !ok {
			continue
		}
		l.refill(b, now)
		if b.tokens < 1 {
			var w time.Duration
			if l.perSec > 0 {
				w = time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
			} else {
				w = time.Hour
			}
			wait = max(wait, w)
		}
	}
	return wait
}

// Fail records a failed login for each of keys.
func (l *Limiter) Fail(keys ...string) {
	if l == nil || l.burst <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		b, ok := l.buckets[k]
		if !ok {
			if len(l.buckets) >= l.maxKeys {
				l.evict(now)
			}
			b = &bucket{tokens: l.burst, at: now}
			l.buckets[k] = b
		}
		l.refill(b, now)
		b.tokens = max(0, b.tokens-1)
		b.last = now
	}
}

// evict makes room: buckets that have refilled completely carry no
// information and go first; if none has, the least recently touched does.
func (l *Limiter) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
			continue
		}
		if oldest == "" || b.last.Before(oldestAt) {
			oldest, oldestAt = k, b.last
		}
	}
	if len(l.buckets) >= l.maxKeys {
		delete(l.buckets, oldest)
	}
}

// size reports the number of keys tracked.
func (l *Limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
