package s3

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/testenv"
	"github.com/berthhq/berth/storage/driver"
)

// throttler is a reverse proxy to the real server that answers the first
// requests accepted by match with an error, as a busy S3 does, and lets
// everything else through.
type throttler struct {
	match  func(*http.Request) bool
	status int
	code   string // S3 error code of the answer; "" for no body

	mu       sync.Mutex
	errors   int      // errors still to send
	attempts []string // amz-sdk-request header of each matching request
}

// newThrottledDriver returns a driver whose requests go through a
// throttler in front of m. The backoff is kept tiny so the test is quick.
func newThrottledDriver(t *testing.T, m testenv.MinIO, th *throttler, maxAttempts int) *Driver {
	t.Helper()
	proxy := reverseProxy(t, m)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if th.match(r) {
			th.mu.Lock()
			th.attempts = append(th.attempts, r.Header.Get("Amz-Sdk-Request"))
			fail := th.errors > 0
			if fail {
				th.errors--
			}
			th.mu.Unlock()
			if fail {
				th.reply(w, r)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	opts := testOptions(m)
	opts.Endpoint = srv.URL
	opts.MaxAttempts = maxAttempts
	opts.MaxBackoff = 5 * time.Millisecond
	return newTestDriver(t, opts)
}

// reverseProxy forwards requests to m's server unchanged.
func reverseProxy(t *testing.T, m testenv.MinIO) http.Handler {
	t.Helper()
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the signature covers the Host the client used
	}}
}

func (th *throttler) reply(w http.ResponseWriter, r *http.Request) {
	if th.code == "" || r.Method == http.MethodHead {
		w.WriteHeader(th.status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(th.status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>%s</Code><Message>Please reduce your request rate.</Message>`+
		`<Resource>%s</Resource><RequestId>test</RequestId></Error>`, th.code, r.URL.Path)
}

func (th *throttler) seen() []string {
	th.mu.Lock()
	defer th.mu.Unlock()
	return th.attempts
}

// requestsTo matches requests with method for keys ending in name;
// query, if not empty, must be in the raw query too.
func requestsTo(method, name, query string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == method && strings.HasSuffix(r.URL.Path, "/"+name) && strings.Contains(r.URL.RawQuery, query)
	}
}

func TestThrottlingRetries(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	content := []byte("content")

	for _, tc := range []struct {
		name   string
		path   string // the file op creates
		status int
		code   string
		errors int
		op     func(d *Driver) error
		match  func(*http.Request) bool
	}{
		{
			name: "PutContent after 3 SlowDown", path: "/put", status: http.StatusServiceUnavailable, code: "SlowDown", errors: 3,
			match: requestsTo(http.MethodPut, "put", ""),
			op:    func(d *Driver) error { return d.PutContent(ctx, "/put", content) },
		},
		{
			name: "GetContent after 2 HTTP 429", path: "/get", status: http.StatusTooManyRequests, code: "TooManyRequests", errors: 2,
			match: requestsTo(http.MethodGet, "get", ""),
			op: func(d *Driver) error {
				if err := d.PutContent(ctx, "/get", content); err != nil {
					return err
				}
				got, err := d.GetContent(ctx, "/get")
				if err == nil && string(got) != string(content) {
					err = fmt.Errorf("GetContent = %q", got)
				}
				return err
			},
		},
		{
			name: "Stat after 2 bare 503", path: "/stat", status: http.StatusServiceUnavailable, errors: 2,
			match: requestsTo(http.MethodHead, "stat", ""),
			op: func(d *Driver) error {
				if err := d.PutContent(ctx, "/stat", content); err != nil {
					return err
				}
				fi, err := d.Stat(ctx, "/stat")
				if err == nil && fi.Size() != int64(len(content)) {
					err = fmt.Errorf("Stat size = %d", fi.Size())
				}
				return err
			},
		},
		{
			name: "part upload after 2 SlowDown", path: "/part", status: http.StatusServiceUnavailable, code: "SlowDown", errors: 2,
			match: requestsTo(http.MethodPut, "part", "partNumber=1"),
			op: func(d *Driver) error {
				w, err := d.Writer(ctx, "/part", false)
				if err != nil {
					return err
				}
				if _, err := w.Write(make([]byte, MinPartSize+1)); err != nil {
					return err
				}
				return w.Commit(ctx)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := &throttler{match: tc.match, status: tc.status, code: tc.code, errors: tc.errors}
			d := newThrottledDriver(t, m, th, 5)
			if err := tc.op(d); err != nil {
				t.Fatalf("operation failed despite retries: %v", err)
			}
			seen := th.seen()
			if len(seen) != tc.errors+1 {
				t.Errorf("%d attempts reached the server, want %d (%d throttled, 1 served)", len(seen), tc.errors+1, tc.errors)
			}
			if want := fmt.Sprintf("attempt=%d; max=5", tc.errors+1); len(seen) > 0 && seen[len(seen)-1] != want {
				t.Errorf("last attempt sent amz-sdk-request %q, want %q", seen[len(seen)-1], want)
			}
			if err := d.Delete(ctx, tc.path); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("gives up after MaxAttempts", func(t *testing.T) {
		th := &throttler{match: requestsTo(http.MethodPut, "busy", ""), status: http.StatusServiceUnavailable, code: "SlowDown", errors: 3}
		d := newThrottledDriver(t, m, th, 2)
		err := d.PutContent(ctx, "/busy", content)
		if err == nil {
			t.Fatal("PutContent succeeded through 3 throttled answers with 2 attempts")
		}
		if errorCode(err) != "SlowDown" {
			t.Errorf("error %v, want one with code SlowDown", err)
		}
		if n := len(th.seen()); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
		if _, err := d.Stat(ctx, "/busy"); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Stat after the failed put = %v, want ErrNotFound", err)
		}
	})

	t.Run("no retry of a client error", func(t *testing.T) {
		th := &throttler{match: requestsTo(http.MethodPut, "denied", ""), status: http.StatusForbidden, code: "AccessDenied", errors: 1}
		d := newThrottledDriver(t, m, th, 5)
		if err := d.PutContent(ctx, "/denied", content); errorCode(err) != "AccessDenied" {
			t.Errorf("PutContent = %v, want AccessDenied", err)
		}
		if n := len(th.seen()); n != 1 {
			t.Errorf("%d attempts of a request refused with 403, want 1", n)
		}
	})

	wantBucketEmpty(t, newTestDriver(t, testOptions(m)))
}

// TestTLSVerification reaches the server over TLS with a certificate no
// one vouches for: refused by default, accepted with InsecureSkipVerify.
func TestTLSVerification(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := t.Context()
	srv := httptest.NewTLSServer(reverseProxy(t, m))
	t.Cleanup(srv.Close)
	opts := testOptions(m)
	opts.Endpoint = srv.URL
	opts.MaxAttempts = 1
	if _, err := New(ctx, opts); err == nil {
		t.Fatal("New accepted an unverified certificate")
	}
	opts.InsecureSkipVerify = true
	d := newTestDriver(t, opts)
	if err := d.PutContent(ctx, "/f", []byte("over TLS")); err != nil {
		t.Fatal(err)
	}
	if b, err := d.GetContent(ctx, "/f"); err != nil || string(b) != "over TLS" {
		t.Fatalf("GetContent = %q, %v", b, err)
	}
	if err := d.Delete(ctx, "/f"); err != nil {
		t.Fatal(err)
	}
	wantBucketEmpty(t, d)
}
