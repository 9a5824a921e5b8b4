package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func fastRetry(attempts int) RetryOptions {
	return RetryOptions{Attempts: attempts, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var bodies sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		bodies.Store(n, string(b))
		switch r.URL.Path {
		case "/flaky":
			if n < 3 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/busy":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		case "/down":
			w.WriteHeader(http.StatusBadGateway)
			return
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)

	do := func(rt http.RoundTripper, method, path string, body io.Reader) int {
		t.Helper()
		calls.Store(0)
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	rt := NewRetry(http.DefaultTransport, fastRetry(4))
	if st := do(rt, "GET", "/flaky", nil); st != 200 || calls.Load() != 3 {
		t.Errorf("GET /flaky: status %d after %d calls, want 200 after 3", st, calls.Load())
	}
	// A replayable body is sent again, whole.
	if st := do(rt, "PUT", "/flaky", bytes.NewReader([]byte("payload"))); st != 200 || calls.Load() != 3 {
		t.Errorf("PUT /flaky: status %d after %d calls", st, calls.Load())
	}
	for i := int32(1); i <= 3; i++ {
		if b, _ := bodies.Load(i); b != "payload" {
			t.Errorf("attempt %d sent body %q", i, b)
		}
	}
	// A streamed body cannot be replayed: one attempt.
	if st := do(rt, "PUT", "/flaky", io.MultiReader(strings.NewReader("x"))); st != 503 || calls.Load() != 1 {
		t.Errorf("PUT with a streamed body: status %d after %d calls, want 503 after 1", st, calls.Load())
	}
	// POST without a body is not idempotent: one attempt.
	if st := do(rt, "POST", "/flaky", nil); st != 503 || calls.Load() != 1 {
		t.Errorf("POST: status %d after %d calls, want 503 after 1", st, calls.Load())
	}
	// Bounded.
	if st := do(rt, "GET", "/down", nil); st != 502 || calls.Load() != 4 {
		t.Errorf("GET /down: status %d after %d calls, want 502 after 4", st, calls.Load())
	}
	// A Retry-After beyond the bound is returned at once.
	if st := do(rt, "GET", "/busy", nil); st != 429 || calls.Load() != 1 {
		t.Errorf("GET /busy: status %d after %d calls, want 429 after 1", st, calls.Load())
	}
	if st := do(rt, "GET", "/missing", nil); st != 404 || calls.Load() != 1 {
		t.Errorf("GET /missing: status %d after %d calls", st, calls.Load())
	}
	// The context stops the waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/down", nil)
	if _, err := NewRetry(http.DefaultTransport, fastRetry(4)).RoundTrip(req); err == nil {
		t.Error("cancelled request succeeded")
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	var first atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(0, time.Now().UnixNano()) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if waited := time.Duration(time.Now().UnixNano() - first.Load()); waited < 900*time.Millisecond {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := NewRetry(http.DefaultTransport, fastRetry(3)).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: the retry did not wait for Retry-After", resp.StatusCode)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	} {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// tokenServer is a token service and a resource that accepts only its tokens.
type tokenServer struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	fetches []*http.Request
	forms   []url.Values
	postOK  bool
	user    string
	pass    string
	refresh string
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{t: t, user: "alice", pass: "secret", refresh: "refresh-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		ts.mu.Lock()
		ts.fetches = append(ts.fetches, r)
		ts.forms = append(ts.forms, r.PostForm)
		postOK := ts.postOK
		ts.mu.Unlock()
		var scopes []string
		switch r.Method {
		case http.MethodPost:
			if !postOK {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			ok := (r.PostForm.Get("grant_type") == "refresh_token" && r.PostForm.Get("refresh_token") == ts.refresh) ||
				(r.PostForm.Get("grant_type") == "password" && r.PostForm.Get("username") == ts.user && r.PostForm.Get("password") == ts.pass)
			if !ok {
				http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
				return
			}
			scopes = strings.Fields(r.PostForm.Get("scope"))
		default:
			if u, p, ok := r.BasicAuth(); ok && (u != ts.user || p != ts.pass) {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
				return
			}
			scopes = r.URL.Query()["scope"]
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token": "tok:" + strings.Join(scopes, " "), "expires_in": 300, "refresh_token": ts.refresh,
		})
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		want := ScopesForRequest(r.Method, r.URL.Path)
		granted := strings.Fields(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok:"))
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok:") && len(want) > 0 && slices.Contains(granted, want[0]) {
			w.WriteHeader(http.StatusOK)
			return
		}
		ch := fmt.Sprintf(`Bearer realm="%s/token",service="test-registry"`, ts.srv.URL)
		if len(want) > 0 {
			ch += fmt.Sprintf(`,scope="%s",error="insufficient_scope"`, strings.Join(want, " "))
		}
		w.Header().Set("WWW-Authenticate", ch)
		w.WriteHeader(http.StatusUnauthorized)
	})
	ts.srv = httptest.NewServer(mux)
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) host() string { return strings.TrimPrefix(ts.srv.URL, "http://") }

func (ts *tokenServer) fetchCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.fetches)
}

func (ts *tokenServer) lastFetch() (*http.Request, url.Values) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.fetches[len(ts.fetches)-1], ts.forms[len(ts.forms)-1]
}

func get(t *testing.T, rt http.RoundTripper, u string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAuthBearerTokens(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	auth := NewAuth(http.DefaultTransport, AuthOptions{
		Host: ts.host(),
		Credentials: func(_ context.Context, host string) (Credentials, error) {
			if host != ts.host() {
				t.Errorf("credentials asked for %q", host)
			}
			return Credentials{Username: "alice", Password: "secret"}, nil
		},
		Now: func() time.Time { return time.Unix(0, now.Load()) },
	})
	res, err := Ping(context.Background(), http.DefaultTransport, &url.URL{Scheme: "http", Host: ts.host()})
	if err != nil {
		t.Fatal(err)
	}
	auth.SetChallenges(res.Challenges)

	if st := get(t, auth, ts.srv.URL+"/v2/app/manifests/latest"); st != 200 {
		t.Fatalf("first GET: %d", st)
	}
	if n := ts.fetchCount(); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
	r, _ := ts.lastFetch()
	if u, p, _ := r.BasicAuth(); u != "alice" || p != "secret" || r.URL.Query().Get("service") != "test-registry" {
		t.Errorf("token GET without credentials or service: %s", r.URL)
	}
	// Cached for the same scope.
	if st := get(t, auth, ts.srv.URL+"/v2/app/blobs/sha256:"+strings.Repeat("0", 64)); st != 200 || ts.fetchCount() != 1 {
		t.Fatalf("second GET: %d, %d fetches", st, ts.fetchCount())
	}
	// Another scope, another token; several scopes are repeated parameters.
	ctx := WithScopes(context.Background(), RepositoryScope("other", ActionPull))
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.srv.URL+"/v2/app/tags/list", nil)
	resp, err := auth.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r, _ = ts.lastFetch()
	if got := r.URL.Query()["scope"]; len(got) != 2 || got[0] != "repository:app:pull" || got[1] != "repository:other:pull" {
		t.Errorf("scopes sent: %v", got)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status with an extra scope: %d", resp.StatusCode)
	}
	// Expiry: past the token's life a new one is fetched.
	before := ts.fetchCount()
	now.Add(int64(10 * time.Minute))
	if st := get(t, auth, ts.srv.URL+"/v2/app/manifests/latest"); st != 200 || ts.fetchCount() != before+1 {
		t.Fatalf("after expiry: %d, fetches %d, want %d", st, ts.fetchCount(), before+1)
	}
	if auth.RefreshToken() != "refresh-1" {
		t.Errorf("refresh token %q not kept", auth.RefreshToken())
	}
	// Without a ping the first 401 teaches the challenge.
	fresh := NewAuth(http.DefaultTransport, AuthOptions{Host: ts.host(),
		Credentials: func(context.Context, string) (Credentials, error) {
			return Credentials{Username: "alice", Password: "secret"}, nil
		}})
	if st := get(t, fresh, ts.srv.URL+"/v2/x/manifests/1"); st != 200 {
		t.Fatalf("GET without a ping: %d", st)
	}
	// Other hosts get no authorization.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("credentials sent to another host")
		}
	}))
	defer other.Close()
	get(t, auth, other.URL+"/v2/app/manifests/latest")
}

func TestAuthBadCredentials(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	auth := NewAuth(http.DefaultTransport, AuthOptions{Host: ts.host(),
		Credentials: func(context.Context, string) (Credentials, error) {
			return Credentials{Username: "alice", Password: "wrong"}, nil
		}})
	req, _ := http.NewRequest("GET", ts.srv.URL+"/v2/app/manifests/latest", nil)
	_, err := auth.RoundTrip(req)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), "bad credentials") {
		t.Errorf("error %q does not carry the token service's message", err)
	}
}

func TestAuthOAuth(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t)
	ts.postOK = true
	ch := Challenge{Scheme: "bearer", Params: map[string]string{"realm": ts.srv.URL + "/token", "service": "svc"}}

	tok, err := FetchToken(context.Background(), http.DefaultTransport, ch, Credentials{IdentityToken: "refresh-1"},
		[]string{"repository:a:pull", "repository:b:pull"}, TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, form := ts.lastFetch()
	if r.Method != http.MethodPost || form.Get("grant_type") != "refresh_token" || form.Get("service") != "svc" ||
		form.Get("scope") != "repository:a:pull repository:b:pull" || form.Get("client_id") == "" {
		t.Errorf("refresh POST: %s %v", r.Method, form)
	}
	if tok.Token != "tok:repository:a:pull repository:b:pull" {
		t.Errorf("token %q", tok.Token)
	}
	// Password grant for a login.
	tok, err = FetchToken(context.Background(), http.DefaultTransport, ch, Credentials{Username: "alice", Password: "secret"},
		nil, TokenOptions{OAuthPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	if r, form := ts.lastFetch(); r.Method != http.MethodPost || form.Get("grant_type") != "password" || tok.RefreshToken != "refresh-1" {
		t.Errorf("password grant: %s %v, refresh %q", r.Method, form, tok.RefreshToken)
	}
	// A service without POST: GET with Basic.
	ts.mu.Lock()
	ts.postOK = false
	ts.mu.Unlock()
	if _, err := FetchToken(context.Background(), http.DefaultTransport, ch, Credentials{Username: "alice", Password: "secret"},
		nil, TokenOptions{OAuthPassword: true}); err != nil {
		t.Fatal(err)
	}
	if r, _ := ts.lastFetch(); r.Method != http.MethodGet {
		t.Errorf("no fallback to GET: %s", r.Method)
	}
}

func TestAuthBasic(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "bob" && p == "pw" {
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	good := NewAuth(http.DefaultTransport, AuthOptions{Host: host,
		Credentials: func(context.Context, string) (Credentials, error) {
			return Credentials{Username: "bob", Password: "pw"}, nil
		}})
	if st := get(t, good, srv.URL+"/v2/"); st != 200 {
		t.Errorf("good credentials: %d", st)
	}
	// A POST with a replayable body is answered after the challenge too.
	req, _ := http.NewRequest("POST", srv.URL+"/v2/a/blobs/uploads/", strings.NewReader("x"))
	resp, err := good.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("POST: %v %v", resp, err)
	}
	bad := NewAuth(http.DefaultTransport, AuthOptions{Host: host,
		Credentials: func(context.Context, string) (Credentials, error) {
			return Credentials{Username: "bob", Password: "no"}, nil
		}})
	if st := get(t, bad, srv.URL+"/v2/"); st != 401 {
		t.Errorf("bad credentials: %d", st)
	}
}

func TestErrorCategories(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		body   string
		is     error
		msg    string
	}{
		{404, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"tag":"x"}}]}`, ErrNotFound, "MANIFEST_UNKNOWN: manifest unknown"},
		{400, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, ErrNotFound, "BLOB_UNKNOWN"},
		{401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, ErrUnauthorized, "authentication required"},
		{403, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, ErrDenied, "denied"},
		{502, `<html>bad gateway</html>`, nil, "<html>bad gateway</html>"},
	} {
		req := httptest.NewRequest("GET", "http://r.example/v2/a/manifests/x?secret=1", nil)
		resp := &http.Response{StatusCode: tt.status, Request: req, Body: io.NopCloser(strings.NewReader(tt.body)), Header: http.Header{}}
		err := CheckResponse(resp, 200)
		if err == nil {
			t.Fatalf("%d: no error", tt.status)
		}
		for _, cat := range []error{ErrNotFound, ErrUnauthorized, ErrDenied} {
			if errors.Is(err, cat) != (cat == tt.is) {
				t.Errorf("%d %s: errors.Is(%v) = %v", tt.status, tt.body, cat, errors.Is(err, cat))
			}
		}
		if !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "secret") {
			t.Errorf("message %q: want %q and no query", err, tt.msg)
		}
	}
}

func TestAuthCredentialScopesAndErrors(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	fail := errors.New("helper exploded")
	var broken bool
	a := NewAuth(http.DefaultTransport, AuthOptions{
		Host:       u.Host,
		Challenges: []Challenge{{Scheme: "basic", Params: map[string]string{"realm": "x"}}},
		Credentials: func(ctx context.Context, host string) (Credentials, error) {
			seen = CredentialScopes(ctx)
			if broken {
				return Credentials{}, fail
			}
			return Credentials{Username: "u", Password: "p"}, nil
		},
	})
	hc := &http.Client{Transport: a}
	resp, err := hc.Get(srv.URL + "/v2/a/b/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(seen) != 1 || seen[0] != "repository:a/b:pull" {
		t.Errorf("CredentialScopes = %v, want [repository:a/b:pull]", seen)
	}
	broken = true
	_, err = hc.Get(srv.URL + "/v2/a/b/manifests/latest")
	if !errors.Is(err, ErrCredentials) || !errors.Is(err, fail) {
		t.Errorf("err = %v, want ErrCredentials wrapping the source's error", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("err has a line break: %q", err)
	}
}

func TestReadTokenMalformed(t *testing.T) {
	for _, body := range []string{`{"token":`, `{}`, `<html>`} {
		resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}}
		if _, err := readToken(resp, time.Now); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: err = %v, want ErrBadToken", body, err)
		}
	}
}
