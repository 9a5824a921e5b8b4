package gc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestScheduler drives a scheduler through its turns with a fake timer:
// each wait it asks for is received on asked, and a turn happens when the
// test sends on tick.
func TestScheduler(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, e *env) {
		const interval = 10 * time.Hour
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		opts := e.options(nil)
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		s := NewScheduler(e.raw, e.blobs, interval, opts)
		asked, tick := make(chan time.Duration), make(chan time.Time)
		s.after = func(d time.Duration) <-chan time.Time {
			asked <- d
			return tick
		}
		s.jitter = func() float64 { return 1.0 } // the middle of [0.9, 1.1)
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		// Never collected: a first turn soon.
		if d := <-asked; d < 0 || d >= firstDelay {
			t.Errorf("first wait = %v, want less than %v", d, firstDelay)
		}
		stale := e.push("app", "stale")
		e.later()
		tick <- time.Time{}

		// Collected and recorded: the next turn is an interval after.
		d := <-asked
		last, err := e.raw.LastGC(ctx)
		if err != nil || last.IsZero() {
			t.Fatalf("LastGC after a turn = %v, %v", last, err)
		}
		if d < interval-time.Minute || d > interval {
			t.Errorf("wait after a collection = %v, want about %v", d, interval)
		}
		e.wantBlob("app", stale, false, false)
		runs := s.Recent()
		if len(runs) != 1 || runs[0].Blobs == 0 || runs[0].BytesFreed <= 0 || runs[0].Err != "" || runs[0].Finished.Before(runs[0].Started) {
			t.Errorf("Recent after a collection that freed a blob = %+v", runs)
		}

		// Another collection holds the lock: the turn is skipped, and the
		// next comes after a tenth of the interval.
		release, err := e.raw.LockGC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tick <- time.Time{}
		if d := <-asked; d != interval/10 {
			t.Errorf("wait after a skipped turn = %v, want %v", d, interval/10)
		}
		if again, _ := e.raw.LastGC(ctx); !again.Equal(last) {
			t.Errorf("a skipped turn recorded a collection at %v", again)
		}
		release()
		if got := s.Recent(); len(got) != 1 {
			t.Errorf("Recent after a skipped turn holds %d runs, want 1 (skipped turns are not runs)", len(got))
		}

		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}
