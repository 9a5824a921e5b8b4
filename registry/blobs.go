package registry

import (
	"errors"
	"fmt"
	"io"
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
	repo, err := reg.resolve(rt)
	if err != nil {
		return err
	}
	rng := r.Header.Get("Range")
	b, err := repo.Blob(r.Context(), d, r.Method == http.MethodHead, rng != "")
	if err != nil {
		return metaErr(err, ErrBlobUnknown, rt.Name)
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "max-age=31536000")
	h.Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead || b.Stream != nil {
		if b.Size >= 0 {
			setContentLength(w, b.Size)
		}
		w.WriteHeader(http.StatusOK)
		if b.Stream == nil {
			return nil
		}
		defer b.Stream.Close()
		reg.pulled(r, Action{Repository: rt.Name, Digest: d, MediaType: blobMediaType, Size: b.Size})
		if err := copyStream(w, b.Stream, b.StallTimeout); err != nil {
			// The content could not be verified or stored, or the
			// client went away: cut the response, so that no client
			// takes what it got for the whole blob.
			reg.log.Warn("blob stream broke off; aborting the response", "repo", rt.Name, "digest", d, "err", err)
			panic(http.ErrAbortHandler)
		}
		return nil
	}
	size := b.Size
	if rng != "" {
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
	pull := Action{Repository: rt.Name, Digest: d, MediaType: blobMediaType, Size: size}
	if url, err := reg.blobs.RedirectURL(r, d); err != nil {
		return err
	} else if url != "" {
		http.Redirect(w, r, url, http.StatusTemporaryRedirect)
		reg.pulled(r, pull)
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
	reg.pulled(r, pull)
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (reg *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Ref)
	if err != nil {
		return err
	}
	t, err := reg.target(rt)
	if err != nil {
		return err
	}
	a := Action{Kind: ActionDelete, Repository: rt.Name, Digest: d}
	err = metaErr(reg.meta.DeleteBlob(reg.prepare(r, a), t.Name, d), ErrBlobUnknown, rt.Name)
	reg.audit(r, a, err)
	if err != nil {
		return err
	}
	if t.Forget != nil {
		t.Forget()
	}
	setContentLength(w, 0)
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// copyStream sends a blob arriving from an upstream to the client as it
// comes, each piece flushed at once, dropping a client that takes nothing
// for stall.
func copyStream(w http.ResponseWriter, src io.Reader, stall time.Duration) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if stall > 0 {
				_ = rc.SetWriteDeadline(time.Now().Add(stall))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
