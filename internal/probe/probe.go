// Package probe answers the liveness and readiness probes of process
// supervisors and load balancers: GET /healthz says the process serves
// HTTP (always 200 while it does), GET /readyz says whether it can serve
// registry requests: 200 when every dependency (storage, the metadata
// store) answered within the timeout, else 503 naming what failed. A
// process that is shutting down is not ready, so a load balancer stops
// sending it requests while it drains.
//
// The answers are JSON: {"status":"ready","checks":{"storage":"ok",
// "metadata":"ok"}}. A failed check says "timeout" or "error", never the
// error itself, which may name hosts or paths: the probes are
// unauthenticated. The log has the error.
package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one dependency readiness asks about.
type Check struct {
	Name string
	// Run returns nil when the dependency answers; it must honour ctx.
	Run func(ctx context.Context) error
}

// DefaultTimeout bounds the checks of one readiness probe.
const DefaultTimeout = 2 * time.Second

// Handler answers the probes.
type Handler struct {
	checks   []Check
	timeout  time.Duration
	log      *slog.Logger
	draining atomic.Bool
	// failing remembers which checks failed last, so that a failure is
	// logged when it starts and when it ends, not on every probe.
	mu      sync.Mutex
	failing map[string]bool
}

// New returns a Handler running checks, each bounded by timeout (0:
// DefaultTimeout).
func New(checks []Check, timeout time.Duration, log *slog.Logger) *Handler {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{checks: checks, timeout: timeout, log: log, failing: map[string]bool{}}
}

// SetDraining makes readiness fail from now on: the process is stopping.
func (h *Handler) SetDraining() { h.draining.Store(true) }

type answer struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// ServeHTTP answers /readyz with the checks and anything else (/healthz)
// with 200.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		write(w, r, http.StatusMethodNotAllowed, answer{Status: "method not allowed"})
		return
	}
	if r.URL.Path != "/readyz" {
		write(w, r, http.StatusOK, answer{Status: "ok"})
		return
	}
	a, ok := h.Ready(r.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	write(w, r, status, a)
}

// Ready runs the checks, all at once. A check still running when the
// timeout passes counts as timed out and is not waited for.
func (h *Handler) Ready(ctx context.Context) (answer, bool) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(h.checks))
	for i, c := range h.checks {
		go func() { results <- result{i, c.Run(ctx)} }()
	}
	errs := make([]error, len(h.checks))
	done := make([]bool, len(h.checks))
collect:
	for range h.checks {
		select {
		case r := <-results:
			errs[r.i], done[r.i] = r.err, true
		case <-ctx.Done():
			break collect
		}
	}
	a := answer{Status: "ready", Checks: map[string]string{}}
	ok := true
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range h.checks {
		err := errs[i]
		switch {
		case done[i] && err == nil:
			a.Checks[c.Name] = "ok"
			if h.failing[c.Name] {
				h.log.Info("readiness: answering again", "check", c.Name)
				delete(h.failing, c.Name)
			}
			continue
		case !done[i] || errors.Is(err, context.DeadlineExceeded):
			a.Checks[c.Name] = "timeout"
			if err == nil {
				err = fmt.Errorf("no answer within %v", h.timeout)
			}
		default:
			a.Checks[c.Name] = "error"
		}
		ok = false
		if !h.failing[c.Name] {
			h.log.Warn("readiness: check failed", "check", c.Name, "err", err)
			h.failing[c.Name] = true
		}
	}
	if h.draining.Load() {
		a.Checks["server"] = "shutting down"
		ok = false
	}
	if !ok {
		a.Status = "unavailable"
	}
	return a, ok
}

func write(w http.ResponseWriter, r *http.Request, status int, a answer) {
	b, _ := json.Marshal(a)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
