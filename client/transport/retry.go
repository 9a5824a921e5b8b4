package transport

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// RetryOptions bounds the retries of one request.
type RetryOptions struct {
	// Attempts is the most times a request is sent, the first included (default 4; 1 turns
	// retries off).
	Attempts int
	// Backoff is the wait before the first retry; it doubles for each further one, with
	// jitter (default 200ms).
	Backoff time.Duration
	// MaxBackoff caps the wait between two attempts (default 5s).
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After a server may ask for and still be retried:
	// an answer asking for longer is returned as it is (default 30s).
	MaxRetryAfter time.Duration
	// Statuses are the HTTP statuses worth retrying (default 408, 429, 500, 502, 503, 504).
	Statuses []int
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 30 * time.Second
	}
	if o.Statuses == nil {
		o.Statuses = []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	return o
}

type retry struct {
	inner http.RoundTripper
	opts  RetryOptions
	now   func() time.Time
}

// NewRetry returns a RoundTripper that resends a request to inner after a transient failure
// (a connection reset or refused, an unexpected EOF, a timeout, or one of opts.Statuses),
// waiting with exponential backoff or as long as the answer's Retry-After says.
//
// Only requests that can be sent again unchanged are retried: idempotent methods without a
// body, and requests whose body can be replayed (http.Request.GetBody is set, as
// http.NewRequest does for in-memory bodies). A streamed body is sent once.
func NewRetry(inner http.RoundTripper, opts RetryOptions) http.RoundTripper {
	return &retry{inner: inner, opts: opts.withDefaults(), now: time.Now}
}

type noRetryKey struct{}

// WithoutRetry returns a context whose requests the retry transport sends only once, for
// probes whose failure is itself the answer (a ping deciding between HTTPS and HTTP).
func WithoutRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey{}, true)
}

func (t *retry) RoundTrip(req *http.Request) (*http.Response, error) {
	if !retryable(req) || req.Context().Value(noRetryKey{}) != nil {
		return t.inner.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		resp, err := t.inner.RoundTrip(r)
		if attempt >= t.opts.Attempts {
			return resp, err
		}
		var wait time.Duration
		switch {
		case err != nil:
			if !transientError(err) {
				return nil, err
			}
			wait = t.backoff(attempt)
		case t.retryStatus(resp.StatusCode):
			wait = t.backoff(attempt)
			if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok {
				if ra > t.opts.MaxRetryAfter {
					return resp, nil
				}
				wait = ra
			}
			// Drain a little so the connection can be reused, then drop the answer.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		default:
			return resp, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

func (t *retry) retryStatus(code int) bool {
	for _, s := range t.opts.Statuses {
		if s == code {
			return true
		}
	}
	return false
}

// backoff is the wait after the given failed attempt: Backoff·2^(attempt-1), capped, with up
// to 25% jitter so that many clients do not retry in step.
func (t *retry) backoff(attempt int) time.Duration {
	d := t.opts.Backoff << (attempt - 1)
	if d <= 0 || d > t.opts.MaxBackoff {
		d = t.opts.MaxBackoff
	}
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// retryable reports whether req may be sent more than once.
func retryable(req *http.Request) bool {
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		return req.GetBody != nil
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// transientError reports whether a transport error is worth another attempt.
func transientError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(time.Hour/time.Second)*24 {
			n = int64(time.Hour/time.Second) * 24
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
