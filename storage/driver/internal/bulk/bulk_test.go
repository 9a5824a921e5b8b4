package bulk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestEachCallsEveryKeyWithinTheBound(t *testing.T) {
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	var running, most atomic.Int32
	var mu sync.Mutex
	seen := map[string]bool{}
	err := Each(context.Background(), keys, 4, func(_ context.Context, k string) error {
		r := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		mu.Lock()
		seen[k] = true
		mu.Unlock()
		return nil
	})
	if err != nil || len(seen) != len(keys) || most.Load() > 4 {
		t.Errorf("Each = %v, %d keys seen, %d at once (bound 4)", err, len(seen), most.Load())
	}
}

func TestEachStopsAtTheFirstError(t *testing.T) {
	keys := make([]string, 1000)
	broken := errors.New("broken")
	var calls atomic.Int32
	err := Each(context.Background(), keys, 1, func(context.Context, string) error {
		if calls.Add(1) == 3 {
			return broken
		}
		return nil
	})
	if !errors.Is(err, broken) || calls.Load() > 4 {
		t.Errorf("Each = %v after %d calls; want the error, and no call after it", err, calls.Load())
	}
}
