package connector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berthhq/berth/client/transport"
)

// newServer serves h on loopback until the test ends.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// tokenGate puts the Bearer token flow in front of a registry: /token hands
// out a token per scope to user:pass, and registry requests need a token
// for their repository.
type tokenGate struct {
	mu     sync.Mutex
	issued map[string]int // by scope
	realm  string
}

func (g *tokenGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != "user" || p != "pass" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			scope := r.URL.Query().Get("scope")
			g.mu.Lock()
			g.issued[scope]++
			g.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token":%q,"expires_in":300}`, "tok "+scope)
			return
		}
		scopes := transport.ScopesForRequest(r.Method, r.URL.Path)
		need := ""
		if len(scopes) > 0 {
			need = scopes[0]
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok ")
		if got == r.Header.Get("Authorization") || (need != "" && got != need) {
			ch := fmt.Sprintf(`Bearer realm=%q,service="test"`, g.realm)
			if need != "" {
				ch += fmt.Sprintf(`,scope=%q`, need)
			}
			w.Header().Set("WWW-Authenticate", ch)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestBearerUpstream(t *testing.T) {
	t.Parallel()
	g := &tokenGate{issued: map[string]int{}}
	up := newNode(t, nil, nodeOptions{}, g.wrap)
	g.realm = up.url() + "/token"
	im := newImage(t, 100)
	// Pushed straight to the registry behind the gate.
	plain := &node{t: t, srv: newServer(t, up.reg)}
	plain.push("app", "v1", im)
	plain.push("other", "v1", im)

	rc := cacheOf("hub", "hub/", up.url())
	rc.Upstream.Username, rc.Upstream.Password = "user", "pass"
	rc.TagTTL = durp(0)
	b := newNode(t, Config{rc}, nodeOptions{}, nil)
	b.pull("hub/app", "v1", im)
	b.pull("hub/app", "v1", im) // revalidates with a HEAD: same token
	b.pull("hub/other", "v1", im)
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.issued["repository:app:pull"]; n != 1 {
		t.Errorf("%d tokens for repository:app:pull, want 1 (cached per scope)", n)
	}
	if n := g.issued["repository:other:pull"]; n != 1 {
		t.Errorf("%d tokens for repository:other:pull, want 1", n)
	}
}

func TestBasicUpstream(t *testing.T) {
	t.Parallel()
	basic := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	up := newNode(t, nil, nodeOptions{}, basic)
	plain := &node{t: t, srv: newServer(t, up.reg)}
	im := newImage(t, 100)
	plain.push("app", "v1", im)

	rc := cacheOf("hub", "hub/", up.url())
	rc.Upstream.Username, rc.Upstream.Password = "user", "pass"
	b := newNode(t, Config{rc}, nodeOptions{}, nil)
	b.pull("hub/app", "v1", im)

	// Wrong credentials: the upstream refuses, and the client learns why.
	rc.Upstream.Password = "wrong"
	rc.Name, rc.Prefix = "bad", "bad/"
	b2 := newNode(t, Config{rc}, nodeOptions{}, nil)
	r := b2.do("GET", "/v2/bad/app/manifests/v1", nil)
	if r.status != http.StatusBadGateway {
		t.Fatalf("refused upstream: %v, want 502", r)
	}
	if code, msg := wireCode(t, r.body); code != "UNAVAILABLE" || !strings.Contains(msg, "refused") {
		t.Errorf("%s %q", code, msg)
	}
}
