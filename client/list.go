package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berthhq/berth/client/transport"
)

// ListOptions shape a listing.
type ListOptions struct {
	// PageSize is the n of each request (0: the registry's default).
	PageSize int
	// Last starts the listing after this entry.
	Last string
}

// maxListBody bounds one page of a listing.
const maxListBody = 16 << 20

// maxPages bounds how many Link headers a listing follows.
const maxPages = 100000

// TagPages lists the tags of repo page by page, following the registry's Link headers.
func (c *Client) TagPages(ctx context.Context, repo Reference, opts ListOptions) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		for page, err := range c.pages(ctx, repo.Registry, "/v2/"+repo.Repository+"/tags/list", opts, "tags") {
			if !yield(page, wrap("list tags", repo.Name(), err)) || err != nil {
				return
			}
		}
	}
}

// Tags lists all tags of repo.
func (c *Client) Tags(ctx context.Context, repo Reference, opts ListOptions) ([]string, error) {
	var all []string
	for page, err := range c.TagPages(ctx, repo, opts) {
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
	}
	return all, nil
}

// CatalogPages lists the repositories of registry page by page.
func (c *Client) CatalogPages(ctx context.Context, registry string, opts ListOptions) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		for page, err := range c.pages(ctx, registry, "/v2/_catalog", opts, "repositories") {
			if !yield(page, wrap("list repositories", registry, err)) || err != nil {
				return
			}
		}
	}
}

// Catalog lists all repositories of registry.
func (c *Client) Catalog(ctx context.Context, registry string, opts ListOptions) ([]string, error) {
	var all []string
	for page, err := range c.CatalogPages(ctx, registry, opts) {
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
	}
	return all, nil
}

// pages GETs path and the pages its Link headers lead to, yielding the string list under
// field of each. Links must stay on the endpoint's host.
func (c *Client) pages(ctx context.Context, registry, path string, opts ListOptions, field string) iter.Seq2[[]string, error] {
	return func(yield func([]string, error) bool) {
		ep, err := c.endpoint(ctx, registry) // listings come from the registry, not a mirror
		if err != nil {
			yield(nil, err)
			return
		}
		q := url.Values{}
		if opts.PageSize > 0 {
			q.Set("n", strconv.Itoa(opts.PageSize))
		}
		if opts.Last != "" {
			q.Set("last", opts.Last)
		}
		next, err := url.Parse(ep.url(path, q))
		if err != nil {
			yield(nil, err)
			return
		}
		for i := 0; next != nil; i++ {
			if i >= maxPages {
				yield(nil, fmt.Errorf("more than %d pages", maxPages))
				return
			}
			if next.Host != ep.URL.Host || next.Scheme != ep.URL.Scheme {
				yield(nil, fmt.Errorf("the registry links to another host: %s", next.Redacted()))
				return
			}
			var page []string
			page, next, err = c.page(ctx, ep, next, field)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) {
				return
			}
		}
	}
}

func (c *Client) page(ctx context.Context, ep *endpoint, u *url.URL, field string) ([]string, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := ep.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var body map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&body); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", u.Redacted(), err)
	}
	var list []string
	if raw, ok := body[field]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", u.Redacted(), err)
		}
	}
	next, err := transport.NextLink(resp)
	if err != nil {
		return nil, nil, fmt.Errorf("Link header: %w", err)
	}
	return list, next, nil
}
