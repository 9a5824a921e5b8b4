package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Client speaks the distribution API to one server, as a load generator:
// no retries, no compression, large socket buffers.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the server at base (http://HOST:PORT).
func NewClient(base string, conns int) *Client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
		IdleConnTimeout:     time.Minute,
	}
	return &Client{base: base, hc: &http.Client{Transport: tr}}
}

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// StatusError is an unexpected response.
type StatusError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.Method, e.URL, e.Status, e.Body)
}

func (c *Client) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr http.Header, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &StatusError{Method: method, URL: u, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

// drain reads and closes a response body so its connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// location resolves a response's Location against the request URL.
func location(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s %s: no Location", resp.Request.Method, resp.Request.URL)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("bad Location %q: %w", loc, err)
	}
	return u, nil
}

// StartUpload opens an upload session in repo and returns its URL.
func (c *Client) StartUpload(ctx context.Context, repo string) (*url.URL, error) {
	resp, err := c.do(ctx, http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	drain(resp)
	return location(resp)
}

func withDigest(u *url.URL, d digest.Digest) string {
	v := *u
	q := v.Query()
	q.Set("digest", d.String())
	v.RawQuery = q.Encode()
	return v.String()
}

var octetStream = http.Header{"Content-Type": {"application/octet-stream"}}

// PushMonolithic uploads a blob as the spec's monolithic upload: a POST
// opening a session, then one PUT with the whole content and the digest.
func (c *Client) PushMonolithic(ctx context.Context, repo string, body io.Reader, size int64, d digest.Digest) error {
	u, err := c.StartUpload(ctx, repo)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPut, withDigest(u, d), body, size, octetStream, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// PushChunked uploads a blob as PATCHes of chunk bytes with Content-Range,
// following each Location, then a PUT with the digest and no body.
func (c *Client) PushChunked(ctx context.Context, repo string, content []byte, chunk int, d digest.Digest) error {
	u, err := c.StartUpload(ctx, repo)
	if err != nil {
		return err
	}
	for off := 0; off < len(content); off += chunk {
		end := min(off+chunk, len(content))
		hdr := http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, end-1)},
		}
		resp, err := c.do(ctx, http.MethodPatch, u.String(), bytes.NewReader(content[off:end]), int64(end-off), hdr, http.StatusAccepted)
		if err != nil {
			return err
		}
		drain(resp)
		if u, err = location(resp); err != nil {
			return err
		}
	}
	resp, err := c.do(ctx, http.MethodPut, withDigest(u, d), http.NoBody, 0, nil, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// PushSmall uploads a small blob monolithically.
func (c *Client) PushSmall(ctx context.Context, repo string, content []byte) (digest.Digest, error) {
	d := digest.FromBytes(content)
	return d, c.PushMonolithic(ctx, repo, bytes.NewReader(content), int64(len(content)), d)
}

// Mount links blob d of repository from into repo with a cross-repository
// mount.
func (c *Client) Mount(ctx context.Context, repo, from string, d digest.Digest) error {
	q := url.Values{"mount": {d.String()}, "from": {from}}
	resp, err := c.do(ctx, http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/?"+q.Encode(), nil, 0, nil, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// GetBlob downloads blob d of repo and checks its size and digest. It
// returns the time to the last byte.
func (c *Client) GetBlob(ctx context.Context, repo string, d digest.Digest, size int64) (time.Duration, error) {
	start := time.Now()
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/blobs/"+d.String(), nil, 0, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(h, resp.Body, buf)
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	if n != size {
		return 0, fmt.Errorf("GET blob %s: %d bytes, want %d", d, n, size)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return 0, fmt.Errorf("GET blob %s: content has digest %s", d, got)
	}
	return elapsed, nil
}

// PutManifest uploads a manifest under ref (a tag or its digest), with the
// given extra tags as ?tag= parameters.
func (c *Client) PutManifest(ctx context.Context, repo, ref, mediaType string, body []byte, tags ...string) error {
	u := c.base + "/v2/" + repo + "/manifests/" + ref
	if len(tags) > 0 {
		u += "?" + url.Values{"tag": tags}.Encode()
	}
	resp, err := c.do(ctx, http.MethodPut, u, bytes.NewReader(body), int64(len(body)), http.Header{"Content-Type": {mediaType}}, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// GetManifest fetches a manifest by tag or digest and returns its body.
func (c *Client) GetManifest(ctx context.Context, repo, ref, accept string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/manifests/"+ref, nil, 0, http.Header{"Accept": {accept}}, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// TagCount lists all tags of repo in one request and returns how many there
// are.
func (c *Client) TagCount(ctx context.Context, repo string) (int, error) {
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/tags/list", nil, 0, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, err
	}
	return len(v.Tags), nil
}

// PageCatalog lists the catalog n names at a time, following the Link
// headers, and returns the number of names and pages seen.
func (c *Client) PageCatalog(ctx context.Context, n int) (names, pages int, err error) {
	u := c.base + "/v2/_catalog?n=" + strconv.Itoa(n)
	prev := ""
	for u != "" {
		resp, err := c.do(ctx, http.MethodGet, u, nil, 0, nil, http.StatusOK)
		if err != nil {
			return names, pages, err
		}
		var v struct {
			Repositories []string `json:"repositories"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		drain(resp)
		if err != nil {
			return names, pages, err
		}
		pages++
		for _, name := range v.Repositories {
			if name <= prev {
				return names, pages, fmt.Errorf("catalog out of order: %q after %q", name, prev)
			}
			prev = name
		}
		names += len(v.Repositories)
		u = ""
		if link := resp.Header.Get("Link"); link != "" {
			next, err := nextLink(resp.Request.URL, link)
			if err != nil {
				return names, pages, err
			}
			u = next
		}
	}
	return names, pages, nil
}

// nextLink reads the target of a Link header of rel="next", resolved
// against the request URL.
func nextLink(base *url.URL, link string) (string, error) {
	for _, part := range strings.Split(link, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, `rel="next"`) {
			continue
		}
		start, end := strings.Index(part, "<"), strings.Index(part, ">")
		if start < 0 || end < start {
			break
		}
		u, err := base.Parse(part[start+1 : end])
		if err != nil {
			return "", err
		}
		return u.String(), nil
	}
	return "", fmt.Errorf("malformed Link header %q", link)
}

// GetBlobDiscard downloads blob d of repo, discarding the bytes, and
// returns the time to the last byte. Only the length is checked, so the
// client's hashing does not limit the rate measured.
func (c *Client) GetBlobDiscard(ctx context.Context, repo string, d digest.Digest, size int64) (time.Duration, error) {
	start := time.Now()
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/blobs/"+d.String(), nil, 0, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	if n != size {
		return 0, fmt.Errorf("GET blob %s: %d bytes, want %d", d, n, size)
	}
	return elapsed, nil
}
