package client

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/client/transport"
)

// GetBlob opens the blob d of repo (a reference whose tag and digest are ignored) for
// reading. The reader verifies as it goes: reading past the size the registry announced,
// or to an end whose digest is not d, fails with ErrDigestMismatch instead of io.EOF. A
// caller must treat the data as good only after reading to io.EOF, and must close it.
func (c *Client) GetBlob(ctx context.Context, repo Reference, d digest.Digest) (io.ReadCloser, error) {
	return c.getBlob(ctx, repo, Descriptor{Digest: d, Size: -1}, nil)
}

// GetBlobDescriptor is GetBlob for a descriptor: its size is enforced too.
func (c *Client) GetBlobDescriptor(ctx context.Context, repo Reference, desc Descriptor) (io.ReadCloser, error) {
	return c.getBlob(ctx, repo, desc, nil)
}

func (c *Client) getBlob(ctx context.Context, repo Reference, desc Descriptor, progress func(int64)) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := c.do(ctx, repo.Registry, forPull, func(ep *endpoint) error {
		if err := desc.Digest.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidReference, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url("/v2/"+repo.Repository+"/blobs/"+desc.Digest.String(), nil), nil)
		if err != nil {
			return err
		}
		resp, err := ep.hc.Do(req)
		if err != nil {
			return err
		}
		if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
			return err
		}
		size := desc.Size
		if size < 0 {
			size = resp.ContentLength
		} else if resp.ContentLength >= 0 && resp.ContentLength != size {
			resp.Body.Close()
			return fmt.Errorf("%w: the registry sends %d bytes for blob %s of %d", ErrDigestMismatch, resp.ContentLength, desc.Digest, size)
		}
		rc = newVerifier(resp.Body, desc.Digest, size, progress)
		return nil
	})
	return rc, wrap("get blob", repo.Name()+"@"+desc.Digest.String(), err)
}

// verifier checks what passes through it against a digest and size.
type verifier struct {
	rc       io.ReadCloser
	want     digest.Digest
	size     int64 // -1: unknown
	h        hash.Hash
	n        int64
	progress func(int64)
	err      error // sticky
}

func newVerifier(rc io.ReadCloser, want digest.Digest, size int64, progress func(int64)) *verifier {
	return &verifier{rc: rc, want: want, size: size, h: want.Algorithm().Hash(), progress: progress}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("%w: blob %s is longer than %d bytes", ErrDigestMismatch, v.want, v.size)
		return 0, v.err
	}
	if n > 0 && v.progress != nil {
		v.progress(v.n)
	}
	if errors.Is(err, io.EOF) {
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("%w: blob %s ended after %d of %d bytes", ErrDigestMismatch, v.want, v.n, v.size)
			return 0, v.err
		}
		if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
			v.err = fmt.Errorf("%w: blob content has digest %s, want %s", ErrDigestMismatch, got, v.want)
			return 0, v.err
		}
		v.err = io.EOF
		return n, io.EOF
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }

// HeadBlob returns the descriptor of blob d in repo, or an ErrNotFound error.
func (c *Client) HeadBlob(ctx context.Context, repo Reference, d digest.Digest) (Descriptor, error) {
	var desc Descriptor
	err := c.do(ctx, repo.Registry, forPull, func(ep *endpoint) error {
		var err error
		desc, err = c.headBlob(ctx, ep, repo, d)
		return err
	})
	return desc, wrap("head blob", repo.Name()+"@"+d.String(), err)
}

func (c *Client) headBlob(ctx context.Context, ep *endpoint, repo Reference, d digest.Digest) (Descriptor, error) {
	if err := d.Validate(); err != nil {
		return Descriptor{}, fmt.Errorf("%w: %v", ErrInvalidReference, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, ep.url("/v2/"+repo.Repository+"/blobs/"+d.String(), nil), nil)
	if err != nil {
		return Descriptor{}, err
	}
	resp, err := ep.hc.Do(req)
	if err != nil {
		return Descriptor{}, err
	}
	if err := transport.CheckResponse(resp, http.StatusOK); err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	return Descriptor{MediaType: "application/octet-stream", Digest: d, Size: resp.ContentLength}, nil
}

// blobExists reports whether the registry has blob d in repo.
func (c *Client) blobExists(ctx context.Context, ep *endpoint, repo Reference, d digest.Digest) (bool, error) {
	_, err := c.headBlob(ctx, ep, repo, d)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// DeleteBlob deletes blob d from repo.
func (c *Client) DeleteBlob(ctx context.Context, repo Reference, d digest.Digest) error {
	err := c.do(ctx, repo.Registry, forPush, func(ep *endpoint) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, ep.url("/v2/"+repo.Repository+"/blobs/"+d.String(), nil), nil)
		if err != nil {
			return err
		}
		resp, err := ep.hc.Do(req)
		if err != nil {
			return err
		}
		if err := transport.CheckResponse(resp, http.StatusAccepted, http.StatusOK, http.StatusNoContent); err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return wrap("delete blob", repo.Name()+"@"+d.String(), err)
}

// MountBlob asks the registry to link blob d of repository from (on the same registry) into
// repo, without sending the data. It reports whether the registry did; false (with a nil
// error) means the data must be uploaded.
func (c *Client) MountBlob(ctx context.Context, repo Reference, from string, d digest.Digest) (bool, error) {
	var mounted bool
	err := c.do(ctx, repo.Registry, forPush, func(ep *endpoint) error {
		u, ok, err := c.mount(ctx, ep, repo, from, d)
		if err != nil {
			return err
		}
		mounted = ok
		if u != nil {
			_ = u.Cancel(ctx)
		}
		return nil
	})
	return mounted, wrap("mount blob", repo.Name()+"@"+d.String(), err)
}

// mount POSTs a mount request. Without a mount the registry opens an upload, returned.
func (c *Client) mount(ctx context.Context, ep *endpoint, repo Reference, from string, d digest.Digest) (*Upload, bool, error) {
	ctx = transport.WithScopes(ctx, transport.RepositoryScope(from, transport.ActionPull))
	q := url.Values{"mount": {d.String()}, "from": {from}}
	resp, err := c.postUpload(ctx, ep, repo, q)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return nil, true, nil
	case http.StatusAccepted:
		u, err := newUpload(c, ep, repo, resp)
		return u, false, err
	}
	return nil, false, transport.CheckResponse(resp)
}

// postUpload sends POST /v2/<repo>/blobs/uploads/ with the query.
func (c *Client) postUpload(ctx context.Context, ep *endpoint, repo Reference, q url.Values) (*http.Response, error) {
	if err := repo.Repo().Validate(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url("/v2/"+repo.Repository+"/blobs/uploads/", q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := ep.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusCreated {
		return nil, transport.CheckResponse(resp)
	}
	return resp, nil
}

// PushBlob uploads a blob to repo from r, which must yield exactly desc.Size bytes hashing
// to desc.Digest (the registry verifies, and nothing is stored otherwise). Blobs up to the
// chunk size go in one request; larger ones in chunks, each resumed where the registry says
// its data ends if a connection breaks. A blob the registry already has is not sent.
func (c *Client) PushBlob(ctx context.Context, repo Reference, desc Descriptor, r io.Reader) error {
	err := c.do(ctx, repo.Registry, forPush, func(ep *endpoint) error {
		if ok, err := c.blobExists(ctx, ep, repo, desc.Digest); err != nil || ok {
			return err
		}
		return c.pushBlob(ctx, ep, repo, desc, r, nil, nil)
	})
	return wrap("push blob", repo.Name()+"@"+desc.Digest.String(), err)
}

// pushBlob uploads, into u if given (an upload a failed mount opened) or a new upload.
func (c *Client) pushBlob(ctx context.Context, ep *endpoint, repo Reference, desc Descriptor, r io.Reader, u *Upload, progress func(int64)) error {
	if u == nil {
		var err error
		u, err = c.startUpload(ctx, ep, repo)
		if err != nil {
			return err
		}
	}
	if c.chunkSize == 0 || (desc.Size >= 0 && desc.Size <= c.chunkSize) {
		return u.commitWith(ctx, desc, r, progress)
	}
	buf := make([]byte, c.chunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if werr := u.WriteChunk(ctx, buf[:n]); werr != nil {
				_ = u.Cancel(context.WithoutCancel(ctx))
				return werr
			}
			if progress != nil {
				progress(u.Offset())
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			_ = u.Cancel(context.WithoutCancel(ctx))
			return err
		}
	}
	if desc.Size >= 0 && u.Offset() != desc.Size {
		_ = u.Cancel(context.WithoutCancel(ctx))
		return fmt.Errorf("blob %s: read %d bytes, want %d", desc.Digest, u.Offset(), desc.Size)
	}
	return u.Commit(ctx, desc.Digest)
}
