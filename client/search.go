package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berthhq/berth/client/service"
	"github.com/berthhq/berth/client/transport"
)

// SearchResult is one repository found by Search.
type SearchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

// SearchFilters keep the results that match every filter set, as the Docker daemon filters
// `docker search --filter`. The registry is asked for its results unfiltered; the filters
// apply to what it returns.
type SearchFilters struct {
	// Stars keeps results with at least this many stars.
	Stars int
	// IsOfficial, when set, keeps results whose is_official is the same.
	IsOfficial *bool
	// IsAutomated, when set, keeps results whose is_automated is the same.
	IsAutomated *bool
}

// ParseSearchFilters parses filters as `docker search --filter` takes them: "stars=N",
// "is-official=true|false", "is-automated=true|false". Several stars filters keep the
// highest; any other key, a bad value, or two different booleans for one key is an error.
func ParseSearchFilters(args []string) (SearchFilters, error) {
	var f SearchFilters
	setBool := func(dst **bool, key, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false" && v != "1" && v != "0") {
			return fmt.Errorf("invalid filter '%s=%s': want true or false", key, v)
		}
		if *dst != nil && **dst != b {
			return fmt.Errorf("invalid filter '%s': both true and false", key)
		}
		*dst = &b
		return nil
	}
	for _, a := range args {
		key, v, ok := strings.Cut(a, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok {
			return f, fmt.Errorf("invalid filter %q: want KEY=VALUE", a)
		}
		var err error
		switch key {
		case "stars":
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 0 {
				return f, fmt.Errorf("invalid filter 'stars=%s': want a number of stars", v)
			}
			f.Stars = max(f.Stars, n)
		case "is-official":
			err = setBool(&f.IsOfficial, key, v)
		case "is-automated":
			err = setBool(&f.IsAutomated, key, v)
		default:
			err = fmt.Errorf("invalid filter %q: the filters are stars, is-official and is-automated", key)
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// Match reports whether r passes the filters.
func (f SearchFilters) Match(r SearchResult) bool {
	return r.StarCount >= f.Stars &&
		(f.IsOfficial == nil || *f.IsOfficial == r.IsOfficial) &&
		(f.IsAutomated == nil || *f.IsAutomated == r.IsAutomated)
}

// SearchOptions shape SearchWithOptions.
type SearchOptions struct {
	// Limit is the n of the request (0 leaves it to the registry).
	Limit int
	// Filters apply to the results.
	Filters SearchFilters
}

// Search asks registry's v1 search API (GET /v1/search?q=&n=) for repositories matching
// term; limit 0 leaves the number to the registry. Registries without the API give an
// error matching ErrUnsupported. SplitSearchTerm splits a `docker search` argument.
func (c *Client) Search(ctx context.Context, registry, term string, limit int) ([]SearchResult, error) {
	return c.SearchWithOptions(ctx, registry, term, SearchOptions{Limit: limit})
}

// SearchWithOptions is Search with filters.
func (c *Client) SearchWithOptions(ctx context.Context, registry, term string, opts SearchOptions) ([]SearchResult, error) {
	var out []SearchResult
	p := forPush // a registry's own endpoints, found by a ping
	if service.IsDockerHub(registry) {
		p = forSearch // Docker Hub's index host
	}
	if opts.Limit < 0 {
		return nil, wrap("search", registry, errors.New("negative limit"))
	}
	err := c.do(ctx, registry, p, func(ep *endpoint) error {
		q := url.Values{"q": {term}}
		if opts.Limit > 0 {
			q.Set("n", strconv.Itoa(opts.Limit))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url("/v1/search", q), nil)
		if err != nil {
			return err
		}
		resp, err := ep.hc.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			err := transport.CheckResponse(resp)
			return fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			Results []SearchResult `json:"results"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&body); err != nil {
			return fmt.Errorf("decoding the search results: %w", err)
		}
		out = out[:0]
		for _, r := range body.Results {
			if opts.Filters.Match(r) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, wrap("search", registry+" for "+strconv.Quote(term), err)
}
