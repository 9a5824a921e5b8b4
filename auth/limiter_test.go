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
	if w := l.Wait("client a", "user x"); w <= 0 || w > 10*time.Second {
		t.Fatalf("after the burst: wait %v, want up to 10s", w)
	}
	// Only the guessing source is blocked: the user from another client,
	// and another user from this client, are judged as usual.
	if w := l.Wait("client b", "user x"); w != 0 {
		t.Fatalf("the user from another client: wait %v", w)
	}
	if w := l.Wait("client a", "user y"); w != 0 {
		t.Fatalf("another user from the guessing client: wait %v", w)
	}
	c.advance(10 * time.Second)
	if w := l.Wait("client a", "user x"); w != 0 {
		t.Fatalf("after the refill interval: wait %v", w)
	}
	l.Fail("client a", "user x")
	if l.Wait("client a", "user x") == 0 {
		t.Fatal("one refilled failure allowed more than one attempt")
	}
	c.advance(time.Hour)
	if l.Wait("client a", "user x") != 0 {
		t.Fatal("still blocked after an hour")
	}
}

// TestLimiterDistributedGuessing spreads guesses for one user over many
// addresses: once the user's own budget is spent, each further address
// gets one wrong guess, and an address that never failed is not blocked.
func TestLimiterDistributedGuessing(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLimiter(2, 1)
	l.now = c.now
	// userFactor*burst failures, two per address: the user's budget.
	for i := range userFactor {
		for range 2 {
			l.Fail(fmt.Sprintf("10.0.0.%d", i), "admin")
		}
	}
	l.Fail("10.0.1.1", "admin")
	if l.Wait("10.0.1.1", "admin") == 0 {
		t.Fatal("a new address kept guessing after the user's budget was spent")
	}
	if w := l.Wait("192.0.2.7", "admin"); w != 0 {
		t.Fatalf("an address that never failed waits %v", w)
	}
	if w := l.Wait("10.0.1.1", "other"); w != 0 {
		t.Fatalf("another user from a guessing address waits %v", w)
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLimiter(2, 1)
	l.now = c.now
	l.maxKeys = 100
	l.Fail("victim", "v")
	l.Fail("victim", "v")
	for i := range 1000 {
		c.advance(time.Millisecond)
		l.Fail(fmt.Sprintf("spray %d", i), "v")
	}
	if n := l.size(); n > 100 {
		t.Fatalf("%d keys tracked, bound is 100", n)
	}
}

func TestLimiterDisabled(t *testing.T) {
	t.Parallel()
	l := NewLimiter(0, 0)
	for range 100 {
		l.Fail("k", "u")
	}
	if l.Wait("k", "u") != 0 || l.size() != 0 {
		t.Fatal("a disabled limiter limits or remembers")
	}
	var nilLimiter *Limiter
	nilLimiter.Fail("k", "u")
	if nilLimiter.Wait("k", "u") != 0 {
		t.Fatal("nil limiter limits")
	}
}
