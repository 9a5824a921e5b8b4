package connector

import (
	"context"
	"sync"
)

// flight is one piece of upstream work that concurrent requests share.
type flight struct {
	done chan struct{}
	err  error // valid once done is closed
}

// flights deduplicates upstream work by key: the first caller of join leads
// (does the work and calls land), later ones wait for it. The leader lands
// the flight only after its result is committed to the store, and lookups
// in the store come before join, so a caller that misses the store and
// finds no flight can rely on a re-check of the store (see the callers).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

func newFlights() *flights { return &flights{m: map[string]*flight{}} }

// join returns the flight for key and whether the caller leads it.
func (g *flights) join(key string) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

// land ends the flight for key with err.
func (g *flights) land(key string, f *flight, err error) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	f.err = err
	close(f.done)
}

// wait waits for f to land or ctx to end.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run does fn once for all concurrent callers with the same key, in its own
// goroutine with the connector's context, so that a caller that goes away
// does not cancel the work the others wait for; each caller waits with its
// own ctx.
func (ca *cache) run(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	f, leader := ca.flights.join(key)
	if leader && !ca.env.goAsync(func() { ca.flights.land(key, f, fn(ca.env.ctx)) }) {
		ca.flights.land(key, f, errClosed)
	}
	return f.wait(ctx)
}
