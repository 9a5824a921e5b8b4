package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestPingResponseError tells an answer that is not a V2 registry's from no answer at all.
func TestPingResponseError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/registry/v2/":
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		case "/token-only/v2/":
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://x/token",service="x"`)
			w.WriteHeader(http.StatusUnauthorized)
		case "/bare401/v2/":
			w.WriteHeader(http.StatusUnauthorized)
		case "/down/v2/":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("<html>not here</html>"))
		}
	}))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	ctx := context.Background()
	for _, tc := range []struct {
		path     string
		wantPing bool // a *PingResponseError
		status   int
		text     string
	}{
		{path: "/registry"},
		{path: "/token-only"},
		{path: "/web", wantPing: true, status: 404, text: "<html>not here</html>"},
		{path: "/bare401", wantPing: true, status: 401, text: "without a WWW-Authenticate"},
		{path: "/down", wantPing: true, status: 503, text: "503"},
	} {
		_, err := Ping(ctx, http.DefaultTransport, base.JoinPath(tc.path))
		if !tc.wantPing {
			if err != nil {
				t.Errorf("%s: %v", tc.path, err)
			}
			continue
		}
		var pe *PingResponseError
		if !errors.As(err, &pe) || !IsPingResponseError(err) {
			t.Fatalf("%s: %T %v, want a *PingResponseError", tc.path, err, err)
		}
		if pe.StatusCode != tc.status || !strings.Contains(err.Error(), "is not a V2 registry") || !strings.Contains(err.Error(), tc.text) ||
			!strings.HasSuffix(pe.URL, tc.path+"/v2/") {
			t.Errorf("%s: %+v: %v", tc.path, pe, err)
		}
		// The answer itself stays reachable for callers that sort by status.
		var re *Error
		if tc.status != 401 && (!errors.As(err, &re) || re.StatusCode != tc.status) {
			t.Errorf("%s: no *Error with status %d inside %v", tc.path, tc.status, err)
		}
	}
	// No answer at all: a transport error, not a ping response error.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &url.URL{Scheme: "http", Host: l.Addr().String()}
	l.Close()
	if _, err := Ping(ctx, http.DefaultTransport, dead); err == nil || IsPingResponseError(err) {
		t.Errorf("ping of a closed port: %v, want a transport error", err)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	t.Cleanup(srv.Close)
	meta := http.Header{"X-Meta-Source": {"berth-test"}, "x-meta-multi": {"a", "b"}, "Authorization": {"Basic leak"}, "User-Agent": {"spoof"}}
	rt := NewUserAgent(NewHeaders(http.DefaultTransport, meta), "berth-test/1")
	meta.Set("X-Meta-Source", "changed after") // copied, not shared
	hc := &http.Client{Transport: rt}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	if h.Get("X-Meta-Source") != "berth-test" || strings.Join(h.Values("X-Meta-Multi"), ",") != "a,b" ||
		h.Get("User-Agent") != "berth-test/1" || h.Get("Authorization") != "" {
		t.Errorf("headers sent: %v", h)
	}
	// A request's own value wins.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Meta-Source", "mine")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-got; h.Get("X-Meta-Source") != "mine" {
		t.Errorf("the request's header was replaced: %v", h)
	}
	if NewHeaders(http.DefaultTransport, http.Header{"Host": {"x"}}) != http.DefaultTransport {
		t.Error("NewHeaders with nothing to add wraps anyway")
	}
}
