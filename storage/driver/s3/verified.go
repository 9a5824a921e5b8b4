package s3

import (
	"context"
	"io"

	"github.com/berthhq/berth/storage/driver"
)

var _ driver.VerifiedWriter = (*Driver)(nil)

// WriteVerified implements driver.VerifiedWriter: the bytes of r go to
// path's object as one multipart upload (one PutObject for less than a
// part), which becomes the object only at CompleteMultipartUpload, after
// verify approved. Otherwise the upload is aborted; nothing is read from
// or done to the object at path, which stays as it was.
func (d *Driver) WriteVerified(ctx context.Context, p string, r io.Reader, verify func() error) (int64, error) {
	if !driver.ValidPath(p) {
		return 0, invalid(p)
	}
	w := &writer{d: d, ctx: ctx, path: p, key: d.key(p), pendingKey: d.pendingKey(p), partSize: d.partSize}
	n, err := io.Copy(w, r)
	if err == nil {
		err = verify()
	}
	if err != nil {
		w.state = stateClosed
		w.buf.Release(&w.d.bufs)
		w.abandonUpload()
		return n, err
	}
	if err := w.Commit(ctx); err != nil {
		return n, err
	}
	return n, nil
}
