package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLimiter(3, 6) // 3 failures, then one more every 10s
	l.now = c.now
	for i := range 3 {
		if w := l.Wait("client a", "user x"); w != 0 {
			t.Fatalf("failure %d: wait %v before the burst is spent", i, w)
		}
		l.Fail("client a", "user x")
	}
	if w := l.Wait("client a"); w <= 0 || w > 10*time.Second {
		t.Fatalf("after the burst: wait %v, want up to 10s", w)
	}
	// The user is blocked from another client too, and the client for
	// another user.
	if l.Wait("client b", "user x") == 0 || l.Wait("client a", "user y") == 0 {
		t.Fatal("a key with spent budget does not block")
	}
	if l.Wait("client b", "user y") != 0 {
		t.Fatal("unrelated keys blocked")
	}
	c.advance(10 * time.Second)
	if w := l.Wait("client a", "user x"); w != 0 {
		t.Fatalf("after the refill interval: wait %v", w)
	}
	l.Fail("client a", "user x")
	if l.Wait("client a") == 0 {
		t.Fatal("one refilled failure allowed more than one attempt")
	}
	c.advance(time.Hour)
	if l.Wait("client a", "user x") != 0 {
		t.Fatal("still blocked after an hour")
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLimiter(2, 1)
	l.now = c.now
	l.maxKeys = 100
	l.Fail("victim")
	l.Fail("victim")
	for i := range 1000 {
		c.advance(time.Millisecond)
		l.Fail(fmt.Sprintf("spray %d", i))
	}
	if n := l.size(); n > 100 {
		t.Fatalf("%d keys tracked, bound is 100", n)
	}
}

func TestLimiterDisabled(t *testing.T) {
	t.Parallel()
	l := NewLimiter(0, 0)
	for range 100 {
		l.Fail("k")
	}
	if l.Wait("k") != 0 || l.size() != 0 {
		t.Fatal("a disabled limiter limits or remembers")
	}
	var nilLimiter *Limiter
	nilLimiter.Fail("k")
	if nilLimiter.Wait("k") != 0 {
		t.Fatal("nil limiter limits")
	}
}
