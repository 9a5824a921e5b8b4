package auth

import (
	"sync"
	"time"
)

// Limiter slows down password guessing without locking out the account it
// protects.
//
// Failures are counted per guessing source: a client address and the user
// name it tried. Each (address, user) pair has a bucket of Burst failures
// that refills at Rate per minute; while a pair's bucket is empty, its
// logins are refused (429) without looking at the password. A correct
// password from any other address, and any other user from the guessing
// address, are judged as usual: an attacker cannot lock out a user or the
// users behind a shared address.
//
// Each user also has a bucket of userFactor × Burst failures over all
// addresses. While it is empty (a guess from many addresses at once), an
// address gets one wrong guess for that user before it is refused, so
// spreading a guess over more addresses buys little; an address that has
// not failed still logs in with the right password.
//
// Successful logins cost nothing. Memory is bounded: at most maxKeys
// buckets are tracked, and when the table is full the one that failed
// longest ago is forgotten.
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
	cap    float64
	at     time.Time // when tokens was last brought up to date
	last   time.Time // of the last failure
}

// defaultLimiterKeys bounds the buckets a Limiter tracks.
const defaultLimiterKeys = 10000

// userFactor sizes a user's bucket over all addresses, in bursts.
const userFactor = 10

// NewLimiter returns a limiter allowing burst failures per address and
// user, refilled at perMinute a minute. burst <= 0 disables it.
func NewLimiter(burst int, perMinute float64) *Limiter {
	return &Limiter{
		burst:   float64(burst),
		perSec:  perMinute / 60,
		maxKeys: defaultLimiterKeys,
		now:     time.Now,
		buckets: map[string]*bucket{},
	}
}

func pairKey(source, user string) string { return "p\x00" + source + "\x00" + user }
func userKey(user string) string         { return "u\x00" + user }

// refill brings b up to date.
func (l *Limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = min(b.cap, b.tokens+d*l.perSec*b.cap/l.burst)
	}
	b.at = now
}

// Wait returns how long source must wait before its next login as user is
// judged; zero when it may proceed.
func (l *Limiter) Wait(source, user string) time.Duration {
	if l == nil || l.burst <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[pairKey(source, user)]
	if !ok {
		return 0
	}
	l.refill(b, l.now())
	if b.tokens >= 1 {
		return 0
	}
	if l.perSec <= 0 {
		return time.Hour
	}
	return time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
}

// Fail records a failed login of source as user.
func (l *Limiter) Fail(source, user string) {
	if l == nil || l.burst <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u := l.take(userKey(user), l.burst*userFactor, now)
	p := l.take(pairKey(source, user), l.burst, now)
	if u.tokens < 1 {
		// The user is being guessed at from many addresses: this one
		// has had its guess.
		p.tokens = 0
	}
}

// take returns the bucket of key (of capacity cap), with one failure
// taken from it.
func (l *Limiter) take(key string, cap float64, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = &bucket{tokens: cap, cap: cap, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
	b.last = now
	return b
}

// evict makes room: buckets that have refilled completely carry no
// information and go first; if none has, the least recently touched does.
func (l *Limiter) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= b.cap {
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

// size reports the number of buckets tracked.
func (l *Limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
