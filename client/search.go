package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

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

// Search asks registry's v1 search API (GET /v1/search?q=&n=) for repositories matching
// term; limit 0 leaves the number to the registry. Registries without the API give an
// error matching ErrUnsupported. SplitSearchTerm splits a `docker search` argument.
func (c *Client) Search(ctx context.Context, registry, term string, limit int) ([]SearchResult, error) {
	var out []SearchResult
	p := forPush // a registry's own endpoints, found by a ping
	if service.IsDockerHub(registry) {
		p = forSearch // Docker Hub's index host
	}
	err := c.do(ctx, registry, p, func(ep *endpoint) error {
		q := url.Values{"q": {term}}
		if limit > 0 {
			q.Set("n", strconv.Itoa(limit))
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
		out = body.Results
		return nil
	})
	return out, wrap("search", registry+" for "+strconv.Quote(term), err)
}
