package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/client/transport"
)

// DockerHubConfig is the upstream.dockerhub section.
type DockerHubConfig struct {
	// SearchURL is the base URL of Docker Hub's search API (default
	// https://hub.docker.com): GET SEARCHURL/v2/search/repositories/.
	SearchURL string `yaml:"searchURL"`
}

// DefaultDockerHubSearch is where Docker Hub's search API lives.
const DefaultDockerHubSearch = "https://hub.docker.com"

// DockerHubRegistry is where Docker Hub serves the registry API.
const DockerHubRegistry = "https://registry-1.docker.io"

// dockerHub is the generic provider plus Docker Hub's search, its rate
// limit headers, and no catalog (Docker Hub has none).
type dockerHub struct {
	generic *genericProvider
	search  *url.URL
	hc      *http.Client
	now     func() time.Time

	mu    sync.Mutex
	limit *RateLimit
}

func dockerHubDefaults(u, single string) (string, string) {
	if u == "" {
		u = DockerHubRegistry
	}
	if single == "" {
		single = "library/"
	}
	return u, single
}

func checkDockerHub(env Env) error {
	if err := checkGeneric(env); err != nil {
		return err
	}
	if s := env.Settings.DockerHub.SearchURL; s != "" {
		if _, err := parseBaseURL(s); err != nil {
			return fmt.Errorf("dockerhub.searchURL %q: %v", s, err)
		}
	}
	return nil
}

// parseBaseURL parses an http(s)://HOST[:PORT] URL without credentials,
// query or fragment; a path is kept.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, err
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("want http(s)://HOST[:PORT]")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("want no credentials, query or fragment")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func newDockerHub(ctx context.Context, env Env) (Provider, error) {
	g, _ := newGenericProvider(ctx, env)
	s := env.Settings.DockerHub.SearchURL
	if s == "" {
		s = DefaultDockerHubSearch
	}
	su, err := parseBaseURL(s)
	if err != nil {
		return nil, fmt.Errorf("dockerhub.searchURL: %w", err)
	}
	return &dockerHub{generic: g.(*genericProvider), search: su, hc: env.HTTPClient, now: env.Now}, nil
}

func (d *dockerHub) Credentials(ctx context.Context, scopes []string) (Credentials, error) {
	return d.generic.Credentials(ctx, scopes)
}

// Invalidate implements Invalidator.
func (d *dockerHub) Invalidate() bool { return d.generic.Invalidate() }

// maxSearchBody bounds a search answer.
const maxSearchBody = 4 << 20

// hubSearchPage is the largest page_size Docker Hub accepts.
const hubSearchPage = 100

// Search implements Searcher with Docker Hub's search API.
func (d *dockerHub) Search(ctx context.Context, term string, n int) ([]Result, error) {
	if n <= 0 {
		return nil, nil
	}
	u := *d.search
	u.Path += "/v2/search/repositories/"
	u.RawQuery = url.Values{"query": {term}, "page_size": {strconv.Itoa(min(n, hubSearchPage))}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dockerhub search: %w", err)
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return nil, fmt.Errorf("dockerhub search: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Results []struct {
			RepoName         string `json:"repo_name"`
			ShortDescription string `json:"short_description"`
			StarCount        int    `json:"star_count"`
			IsOfficial       bool   `json:"is_official"`
			IsAutomated      bool   `json:"is_automated"`
		} `json:"results"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxSearchBody)).Decode(&body); err != nil {
		return nil, fmt.Errorf("dockerhub search: decoding the answer: %w", err)
	}
	out := make([]Result, 0, min(len(body.Results), n))
	for _, r := range body.Results {
		if len(out) >= n {
			break
		}
		name := r.RepoName
		if name == "" {
			continue
		}
		if !strings.Contains(name, "/") {
			name = "library/" + name // official images
		}
		out = append(out, Result{Name: name, Description: r.ShortDescription, Stars: r.StarCount, Official: r.IsOfficial, Automated: r.IsAutomated})
	}
	return out, nil
}

// Observe implements Observer: Docker Hub announces its pull limit on
// manifest requests ("ratelimit-limit: 100;w=21600").
func (d *dockerHub) Observe(resp *http.Response) {
	lim, lw, ok1 := ParseRateLimit(resp.Header.Get("Ratelimit-Limit"))
	rem, rw, ok2 := ParseRateLimit(resp.Header.Get("Ratelimit-Remaining"))
	if !ok1 || !ok2 {
		return
	}
	w := lw
	if w == 0 {
		w = rw
	}
	rl := &RateLimit{Limit: lim, Remaining: rem, Window: w, WindowSeconds: int64(w / time.Second), At: d.now().UTC()}
	d.mu.Lock()
	d.limit = rl
	d.mu.Unlock()
}

// Hints implements Hinter.
func (d *dockerHub) Hints() Hints {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.limit == nil {
		return Hints{}
	}
	rl := *d.limit
	return Hints{RateLimit: &rl}
}

// ParseRateLimit parses a rate-limit header value as Docker Hub sends it,
// "100;w=21600" (a count and the window in seconds; the window is
// optional).
func ParseRateLimit(v string) (n int, window time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return 0, 0, false
	}
	count, params, _ := strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 0 {
		return 0, 0, false
	}
	for _, p := range strings.Split(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "w") {
			s, err := strconv.ParseInt(strings.TrimSpace(val), 10, 32)
			if err != nil || s < 0 {
				return 0, 0, false
			}
			window = time.Duration(s) * time.Second
		}
	}
	return n, window, true
}
