package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage"
)

// parseDigest validates a digest from a path or query.
func parseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := storage.ValidateDigest(d); err != nil {
		return "", &Error{Code: ErrDigestInvalid, Message: fmt.Sprintf("invalid digest %q: %v", s, err), Detail: map[string]string{"digest": s}}
	}
	return d, nil
}

func (reg *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Ref)
	if err != nil {
		return err
	}
	size, err := reg.meta.BlobSize(r.Context(), rt.Name, d)
	if err != nil {
		return metaErr(err, ErrBlobUnknown, rt.Name)
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "max-age=31536000")
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "application/octet-stream")
		setContentLength(w, size)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if rng := r.Header.Get("Range"); rng != "" {
		_, _, multi, ok, perr := parseByteRange(rng, size)
		switch {
		case perr != nil || multi:
			// Malformed or multi-part: answer with the whole blob.
			r.Header.Del("Range")
		case !ok:
			return &Error{Code: ErrRangeUnsatisfiable, Message: fmt.Sprintf("range %q not satisfiable for a blob of %d bytes", rng, size),
				Header: http.Header{"Content-Range": {"bytes */" + strconv.FormatInt(size, 10)}}}
		}
	}
	if url, err := reg.blobs.RedirectURL(r, d); err != nil {
		return err
	} else if url != "" {
		http.Redirect(w, r, url, http.StatusTemporaryRedirect)
		return nil
	}
	f, _, err := reg.blobs.Open(r.Context(), d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		// Metadata says the repository has it but the bytes are gone.
		reg.log.Error("blob missing from storage", "repo", rt.Name, "digest", d)
		return errc(ErrBlobUnknown)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h.Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Ref)
	if err != nil {
		return err
	}
	if err := reg.meta.DeleteBlob(r.Context(), rt.Name, d); err != nil {
		return metaErr(err, ErrBlobUnknown, rt.Name)
	}
	setContentLength(w, 0)
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusAccepted)
	return nil
}
