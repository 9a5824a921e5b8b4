// Package bulk runs one request per key or part against an object store,
// several at a time, stopping at the first failure: deleting a tree of
// objects one by one, copying a large object part by part.
package bulk

import (
	"context"
	"sync"
)

// Each calls fn for every key with at most n calls running at once; see
// Run.
func Each(ctx context.Context, keys []string, n int, fn func(ctx context.Context, key string) error) error {
	return Run(ctx, len(keys), n, func(ctx context.Context, i int) error { return fn(ctx, keys[i]) })
}

// Run calls fn for 0 ≤ i < count with at most n calls running at once.
// The first error cancels the context the other calls get, no call starts
// after it, and it is returned once every call started has ended. A
// cancelled ctx ends Run the same way, with its cause.
func Run(ctx context.Context, count, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i := range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
