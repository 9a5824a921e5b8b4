package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
)

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }
func blobLocation(name string, d digest.Digest) string {
	return "/v2/" + name + "/blobs/" + d.String()
}

// uploadErr maps storage errors of an upload to wire errors.
func (reg *Registry) uploadErr(err error, rt Route) error {
	var re *storage.RangeError
	var stall *stallError
	switch {
	case errors.As(err, &re):
		h := http.Header{}
		h.Set("Location", uploadLocation(rt.Name, rt.Ref))
		h.Set("Range", rangeHeader(re.Size))
		h.Set("Docker-Upload-UUID", rt.Ref)
		return &Error{Code: ErrRangeInvalid, Message: err.Error(), Header: h}
	case errors.Is(err, storage.ErrUploadUnknown):
		return &Error{Code: ErrBlobUploadUnknown, Detail: map[string]string{"uuid": rt.Ref}}
	case errors.Is(err, storage.ErrDigestMismatch):
		return &Error{Code: ErrDigestInvalid, Message: err.Error()}
	case errors.Is(err, storage.ErrUnsupportedDigest):
		return &Error{Code: ErrDigestInvalid, Message: err.Error()}
	case errors.As(err, &stall):
		return &Error{Code: ErrBodyTimeout, Message: stall.Error() + "; the bytes received are kept, resume from the upload's Range"}
	case errors.Is(err, errBodyAborted):
		return &Error{Code: ErrBlobUploadUnknown, Message: "the upload session was cancelled while this request wrote into it", Detail: map[string]string{"uuid": rt.Ref}}
	case errors.Is(err, storage.ErrSourceBroken):
		return &Error{Code: ErrBlobUploadInvalid, Message: "the request body ended before its declared length; the bytes received are kept, resume from the upload's Range"}
	}
	return err
}

// rangeHeader is the Range of an upload holding size bytes. The spec writes
// "0-0" for an empty upload, which clients expect.
func rangeHeader(size int64) string {
	if size == 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

func writeUploadAccepted(w http.ResponseWriter, name, id string, size int64) {
	h := w.Header()
	h.Set("Location", uploadLocation(name, id))
	h.Set("Range", rangeHeader(size))
	h.Set("Docker-Upload-UUID", id)
	setContentLength(w, 0)
	w.WriteHeader(http.StatusAccepted)
}

func writeBlobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", blobLocation(name, d))
	h.Set("Docker-Content-Digest", d.String())
	setContentLength(w, 0)
	w.WriteHeader(http.StatusCreated)
}

// checkLength rejects a body whose declared length disagrees with its
// Content-Range.
func checkLength(r *http.Request, start, end int64) error {
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return errf(ErrSizeInvalid, "Content-Length %d does not match Content-Range %d-%d", r.ContentLength, start, end)
	}
	return nil
}

// chunkStart reads the optional Content-Range of a chunk. It returns -1
// for a streamed chunk (no Content-Range).
func chunkStart(r *http.Request) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, nil
	}
	start, end, err := parseContentRange(cr)
	if err != nil {
		return 0, errf(ErrRangeInvalid, "malformed Content-Range %q", cr)
	}
	if err := checkLength(r, start, end); err != nil {
		return 0, err
	}
	return start, nil
}

func (reg *Registry) startUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		var size int64
		if from := q.Get("from"); from != "" {
			size, err = reg.mountSource(r, from, d)
		} else {
			size, err = reg.anyBlobSize(r, d)
		}
		if err == nil {
			from := q.Get("from")
			a := Action{Kind: ActionMount, Repository: rt.Name, Digest: d, MediaType: blobMediaType, Size: size, From: from}
			err := reg.meta.LinkBlob(reg.prepare(r, a), t.Name, d, size)
			if err != nil {
				err = linkErr(err)
			}
			reg.audit(r, a, err)
			if err != nil {
				return err
			}
			writeBlobCreated(w, rt.Name, d)
			return nil
		}
		if !errors.Is(err, metadata.ErrNotFound) && !errors.Is(err, metadata.ErrRepositoryNotFound) {
			return err
		}
		// Not mountable: open a session as if no mount had been asked for.
	}
	if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return err
		}
		return reg.putBlob(w, r, rt, t, d, r.Body)
	}
	// A POST opening a session carries no data; drain anything sent.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	u, err := reg.blobs.StartUpload(ctx, t.Name)
	if err != nil {
		return err
	}
	writeUploadAccepted(w, rt.Name, u.ID, 0)
	return nil
}

// mountSource returns the size of blob d for a mount from repository
// from, if the caller may read from's blobs and from (or, for a virtual
// registry, one of its members) stores it; metadata.ErrNotFound otherwise.
func (reg *Registry) mountSource(r *http.Request, from string, d digest.Digest) (int64, error) {
	if !ValidName(from) {
		return 0, &Error{Code: ErrNameInvalid, Message: fmt.Sprintf("invalid repository name %q", from), Detail: map[string]string{"name": from}}
	}
	if !reg.mayMount(r, from) {
		return 0, metadata.ErrNotFound
	}
	repo, err := reg.resolver.Resolve(from)
	if err != nil {
		return 0, metadata.ErrNotFound // a name no registry serves holds nothing
	}
	_, size, err := repo.StoredBlob(r.Context(), d)
	return size, err
}

// mayMount reports whether the caller may mount blobs from repository
// name.
func (reg *Registry) mayMount(r *http.Request, name string) bool {
	switch {
	case reg.opts.MayMount != nil:
		return reg.opts.MayMount(r, name)
	case reg.opts.MayPull != nil:
		return reg.opts.MayPull(r, name)
	}
	return true
}

// maxMountScan bounds the repositories holding a blob that a mount without
// "from" looks at for one the caller may read; past it the mount opens an
// upload session, which is always a correct answer.
const maxMountScan = 10000

// anyBlobSize finds blob d for a mount without "from": in a repository the
// caller may mount from, so that knowing a digest is never enough to read
// a blob. The repositories holding d come from an index in metadata, so
// the cost does not grow with the number of repositories.
func (reg *Registry) anyBlobSize(r *http.Request, d digest.Digest) (int64, error) {
	ctx := r.Context()
	size, err := reg.meta.AnyBlobSize(ctx, d)
	if err != nil || (reg.opts.MayMount == nil && reg.opts.MayPull == nil) {
		return size, err
	}
	found, scanned := false, 0
	err = reg.meta.BlobRepositories(ctx, d, func(name string) bool {
		scanned++
		found = reg.mayMount(r, name)
		return !found && scanned < maxMountScan
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, metadata.ErrNotFound
	}
	return size, nil
}

// putBlob stores a whole blob sent in one request and links it to t.
func (reg *Registry) putBlob(w http.ResponseWriter, r *http.Request, rt Route, t *Target, d digest.Digest, body io.Reader) error {
	size, err := reg.blobs.Put(r.Context(), t.Name, d, body)
	if err := reg.linkPushed(r, rt, t, d, size, err); err != nil {
		return err
	}
	writeBlobCreated(w, rt.Name, d)
	return nil
}

// blobMediaType is the media type notifications give blobs: the registry
// does not know what a blob holds.
const blobMediaType = "application/octet-stream"

// linkPushed ends the push of blob d: stored is how storing the request's
// bytes ended; if they are stored, it links d to t, queueing its push event
// with the link. The push is audited either way.
func (reg *Registry) linkPushed(r *http.Request, rt Route, t *Target, d digest.Digest, size int64, stored error) error {
	a := Action{Kind: ActionPush, Repository: rt.Name, Digest: d, MediaType: blobMediaType, Size: size}
	var err error
	if stored != nil {
		err = reg.uploadErr(stored, rt)
	} else if err = reg.meta.LinkBlob(reg.prepare(r, a), t.Name, d, size); err != nil {
		err = linkErr(err)
	}
	reg.audit(r, a, err)
	return err
}

func (reg *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, rt Route) error {
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	u, err := reg.blobs.Status(r.Context(), t.Name, rt.Ref)
	if err != nil {
		return reg.uploadErr(err, rt)
	}
	h := w.Header()
	h.Set("Location", uploadLocation(rt.Name, u.ID))
	h.Set("Range", rangeHeader(u.Size))
	h.Set("Docker-Upload-UUID", u.ID)
	setContentLength(w, 0)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (reg *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	start, err := chunkStart(r)
	if err != nil {
		return err
	}
	size, err := reg.blobs.Append(r.Context(), t.Name, rt.Ref, start, r.Body)
	if err != nil {
		return reg.uploadErr(err, rt)
	}
	writeUploadAccepted(w, rt.Name, rt.Ref, size)
	return nil
}

func (reg *Registry) finishUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return errf(ErrDigestInvalid, "the digest parameter is required to finish an upload")
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	start := int64(-1)
	var body io.Reader
	if r.ContentLength != 0 {
		if start, err = chunkStart(r); err != nil {
			return err
		}
		body = r.Body
	}
	size, err := reg.blobs.Finish(r.Context(), t.Name, rt.Ref, start, body, d)
	if err := reg.linkPushed(r, rt, t, d, size, err); err != nil {
		return err
	}
	writeBlobCreated(w, rt.Name, d)
	return nil
}

func (reg *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	if err := reg.blobs.Cancel(r.Context(), t.Name, rt.Ref); err != nil {
		return reg.uploadErr(err, rt)
	}
	setContentLength(w, 0)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// linkErr maps a failed blob link. Garbage collection may take a blob's
// bytes between their upload and their link: the client's retry uploads
// them again, so that is a temporary condition, not a server failure.
func linkErr(err error) error {
	if errors.Is(err, metadata.ErrCollected) {
		return &Error{Code: ErrUnavailable, Message: "the blob was removed by garbage collection while this request ran; upload it again",
			Header: http.Header{"Retry-After": {"1"}}}
	}
	return err
}
