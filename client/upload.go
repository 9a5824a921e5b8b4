package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/client/transport"
)

// Upload is a blob upload session on a registry. Its location survives the process: a
// program that stopped half way can ResumeUpload from it. An Upload is not safe for
// concurrent use.
type Upload struct {
	c        *Client
	ep       *endpoint
	repo     Reference
	location *url.URL
	offset   int64
}

// maxChunkResumes bounds how often one chunk is resumed after failures.
const maxChunkResumes = 3

// StartUpload opens an upload session in repo.
func (c *Client) StartUpload(ctx context.Context, repo Reference) (*Upload, error) {
	var u *Upload
	err := c.do(ctx, repo.Registry, forPush, func(ep *endpoint) error {
		var err error
		u, err = c.startUpload(ctx, ep, repo)
		return err
	})
	return u, wrap("start upload", repo.Name(), err)
}

func (c *Client) startUpload(ctx context.Context, ep *endpoint, repo Reference) (*Upload, error) {
	resp, err := c.postUpload(ctx, ep, repo, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("POST upload: unexpected status %d", resp.StatusCode)
	}
	return newUpload(c, ep, repo, resp)
}

func newUpload(c *Client, ep *endpoint, repo Reference, resp *http.Response) (*Upload, error) {
	u := &Upload{c: c, ep: ep, repo: repo}
	if err := u.follow(resp); err != nil {
		return nil, err
	}
	if resp.Header.Get("Location") == "" {
		return nil, fmt.Errorf("%s %s: %d without a Location", resp.Request.Method, resp.Request.URL.Redacted(), resp.StatusCode)
	}
	return u, nil
}

// follow takes the Location and Range of an upload answer.
func (u *Upload) follow(resp *http.Response) error {
	if loc := resp.Header.Get("Location"); loc != "" {
		l, err := resp.Request.URL.Parse(loc)
		if err != nil {
			return fmt.Errorf("upload Location %q: %v", loc, err)
		}
		u.location = l
	}
	if rng := resp.Header.Get("Range"); rng != "" {
		off, err := parseUploadRange(rng, u.offset)
		if err != nil {
			return err
		}
		u.offset = off
	}
	return nil
}

// parseUploadRange reads an upload's Range header, "0-N" (or "bytes=0-N") with N the last
// byte held, and returns the size held. "0-0" is ambiguous between no byte and one; known
// is the caller's idea of the size, which decides.
func parseUploadRange(h string, known int64) (int64, error) {
	s := strings.TrimPrefix(strings.TrimSpace(h), "bytes=")
	first, last, ok := strings.Cut(s, "-")
	if !ok || first != "0" {
		return 0, fmt.Errorf("upload Range %q: want 0-N", h)
	}
	n, err := strconv.ParseInt(last, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("upload Range %q: want 0-N", h)
	}
	if n == 0 && known < 1 {
		return 0, nil
	}
	return n + 1, nil
}

// ResumeUpload continues an upload session of repo from its location (Location()), asking
// the registry how much data it holds: Offset() tells where to continue.
func (c *Client) ResumeUpload(ctx context.Context, repo Reference, location string) (*Upload, error) {
	var u *Upload
	err := c.do(ctx, repo.Registry, forPush, func(ep *endpoint) error {
		l, err := ep.URL.Parse(location)
		if err != nil {
			return fmt.Errorf("upload location %q: %v", location, err)
		}
		if l.Host != ep.URL.Host {
			return fmt.Errorf("upload location %q is not on %s", location, ep.URL.Host)
		}
		u = &Upload{c: c, ep: ep, repo: repo, location: l, offset: -1}
		_, err = u.Status(ctx)
		return err
	})
	return u, wrap("resume upload", repo.Name(), err)
}

// Location returns the session's URL, for ResumeUpload.
func (u *Upload) Location() string { return u.location.String() }

// Offset returns how many bytes the registry holds (as of the last answer).
func (u *Upload) Offset() int64 { return u.offset }

// Status asks the registry how many bytes the session holds, and sets Offset to that.
func (u *Upload) Status(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.location.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := u.ep.hc.Do(req)
	if err != nil {
		return 0, err
	}
	if err := transport.CheckResponse(resp, http.StatusNoContent, http.StatusOK); err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.Header.Get("Range") == "" {
		u.offset = 0
	}
	if err := u.follow(resp); err != nil {
		return 0, err
	}
	return u.offset, nil
}

// WriteChunk appends p to the upload with one PATCH. If that fails for any reason but
// authorization or a gone session, it asks the registry where its data ends and sends the
// rest of p from there, a few times at most.
func (u *Upload) WriteChunk(ctx context.Context, p []byte) error {
	if u.offset < 0 {
		if _, err := u.Status(ctx); err != nil {
			return err
		}
	}
	start := u.offset
	for attempt := 0; ; attempt++ {
		err := u.patch(ctx, p)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= maxChunkResumes ||
			errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrDenied) || errors.Is(err, ErrNotFound) {
			return err
		}
		off, serr := u.Status(ctx)
		if serr != nil {
			return fmt.Errorf("%w (and the upload status: %v)", err, serr)
		}
		if off < start || off > start+int64(len(p)) {
			return fmt.Errorf("%w (the registry holds %d bytes, outside this chunk at %d)", err, off, start)
		}
		p, start = p[off-start:], off
		if len(p) == 0 {
			return nil
		}
	}
}

func (u *Upload) patch(ctx context.Context, p []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u.location.String(), bytes.NewReader(p))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", u.offset, u.offset+int64(len(p))-1))
	resp, err := u.ep.hc.Do(req)
	if err != nil {
		return err
	}
	if err := transport.CheckResponse(resp, http.StatusAccepted, http.StatusNoContent); err != nil {
		return err
	}
	resp.Body.Close()
	want := u.offset + int64(len(p))
	u.offset = want
	if err := u.follow(resp); err != nil {
		return err
	}
	if u.offset != want {
		return fmt.Errorf("after a chunk up to %d the registry holds %d bytes", want, u.offset)
	}
	return nil
}

// Commit completes the upload as blob d; the registry verifies the data against d.
func (u *Upload) Commit(ctx context.Context, d digest.Digest) error {
	return u.put(ctx, d, http.NoBody, 0)
}

// commitWith sends the whole blob with the closing PUT (a monolithic upload).
func (u *Upload) commitWith(ctx context.Context, desc Descriptor, r io.Reader, progress func(int64)) error {
	if progress != nil {
		r = &countingReader{r: r, f: progress}
	}
	return u.put(ctx, desc.Digest, io.NopCloser(r), desc.Size)
}

func (u *Upload) put(ctx context.Context, d digest.Digest, body io.ReadCloser, size int64) error {
	loc := *u.location
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := u.ep.hc.Do(req)
	if err != nil {
		return err
	}
	if err := transport.CheckResponse(resp, http.StatusCreated, http.StatusNoContent, http.StatusAccepted); err != nil {
		return err
	}
	resp.Body.Close()
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != d.String() {
		return fmt.Errorf("%w: the registry stored the blob as %s, want %s", ErrDigestMismatch, h, d)
	}
	if size > 0 {
		u.offset += size
	}
	return nil
}

// Cancel abandons the upload; the registry drops its data.
func (u *Upload) Cancel(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.location.String(), nil)
	if err != nil {
		return err
	}
	resp, err := u.ep.hc.Do(req)
	if err != nil {
		return err
	}
	if err := transport.CheckResponse(resp, http.StatusNoContent, http.StatusOK, http.StatusAccepted); err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// countingReader reports the running count of bytes read.
type countingReader struct {
	r io.Reader
	n int64
	f func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.f(c.n)
	}
	return n, err
}
