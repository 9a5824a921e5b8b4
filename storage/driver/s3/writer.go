package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/berthhq/berth/storage/driver/internal/parts"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berthhq/berth/storage/driver"
)

// Metadata of a pending object; its body is the bytes after the last
// full part.
const (
	metaFormat   = "berth-pending" // format version, formatVersion
	metaUploadID = "berth-upload-id"
	metaParts    = "berth-parts"
	metaPartSize = "berth-part-size"
	metaBase     = "berth-base"

	formatVersion = "1"
)

// errCorruptPending marks a pending object this driver cannot read.
var errCorruptPending = errors.New("corrupt pending state")

// pending is the stored state of a writer.
type pending struct {
	uploadID string // "" until the first full part
	parts    int    // parts 1..parts of the upload hold the file's start
	partSize int64
	base     string // identity of the committed file it started from, or ""
}

func (st *pending) metadata() map[string]string {
	m := map[string]string{
		metaFormat:   formatVersion,
		metaParts:    strconv.Itoa(st.parts),
		metaPartSize: strconv.FormatInt(st.partSize, 10),
	}
	if st.uploadID != "" {
		m[metaUploadID] = st.uploadID
	}
	if st.base != "" {
		m[metaBase] = st.base
	}
	return m
}

// parsePending reads the state from an object's metadata. HTTP headers are
// case-insensitive, so the keys are too.
func parsePending(meta map[string]string, tailSize int64) (*pending, error) {
	get := func(k string) string {
		for mk, v := range meta {
			if strings.EqualFold(mk, k) {
				return v
			}
		}
		return ""
	}
	if v := get(metaFormat); v != formatVersion {
		return nil, fmt.Errorf("%w: unknown format %q", errCorruptPending, v)
	}
	st := &pending{uploadID: get(metaUploadID), base: get(metaBase)}
	var err1, err2 error
	st.parts, err1 = strconv.Atoi(get(metaParts))
	st.partSize, err2 = strconv.ParseInt(get(metaPartSize), 10, 64)
	switch {
	case err1 != nil || err2 != nil,
		st.partSize < MinPartSize || st.partSize > MaxPartSize,
		st.parts < 0 || st.parts > MaxParts,
		st.parts > 0 && st.uploadID == "",
		tailSize < 0 || tailSize >= st.partSize:
		return nil, fmt.Errorf("%w: metadata %v with %d bytes", errCorruptPending, meta, tailSize)
	}
	return st, nil
}

// Writer implements driver.Driver. With append false nothing is read: any
// earlier pending state of path is discarded, and the committed file, if
// any, stays readable until Commit replaces it. With append true the
// writer continues the pending state left by an earlier writer's Close, in
// this process or another; without one it continues the committed file.
//
// ctx bounds the requests the writer makes on its own: the part uploads of
// Write and the state saved by Close. If it ends, those fail and what was
// written since the writer was opened is lost, while the stored state stays
// as the previous Close left it.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	w := &writer{d: d, ctx: ctx, path: p, key: d.key(p), pendingKey: d.pendingKey(p), partSize: d.partSize}
	var err error
	if append {
		err = w.resume(ctx)
	} else {
		err = w.create(ctx)
	}
	if err != nil {
		w.buf.Release(&w.d.bufs)
		if errors.Is(err, driver.ErrNotFound) {
			return nil, err
		}
		return nil, wrap("open", p, err)
	}
	return w, nil
}

type writerState int

const (
	stateOpen writerState = iota
	stateClosed
	// stateCommitFailed: Commit failed; the writer takes no more data,
	// but Cancel still cleans up.
	stateCommitFailed
)

// writer is a driver.FileWriter. Like an *os.File it is meant for one
// goroutine at a time.
type writer struct {
	d          *Driver
	ctx        context.Context // for Write and Close
	path       string
	key        string
	pendingKey string

	partSize int64
	uploadID string
	etags    []string     // of parts 1..len(etags)
	buf      parts.Buffer // the bytes after the last part; shorter than partSize
	size     int64

	// base is the identity of the committed file this writer's content
	// started from or replaces ("" if there was none).
	base string
	// durable is how many leading bytes of buf the stored state already
	// holds, as a pending object's tail or as the committed file, while
	// there is no upload yet.
	durable int
	// hasPending: a pending object of ours may exist.
	hasPending bool
	// dirty: the stored state lags behind this writer.
	dirty bool
	state writerState
}

// create prepares a writer that replaces the file.
func (w *writer) create(ctx context.Context) error {
	obj, err := w.d.head(ctx, w.key)
	if err != nil {
		return err
	}
	if err := w.d.discardPendingKey(ctx, w.pendingKey); err != nil {
		return err
	}
	w.base = obj.identity()
	w.dirty = true // even empty, Close must record that the file was replaced
	return nil
}

// resume prepares a writer that appends: to the pending state if there is
// a valid one, else to the committed file.
func (w *writer) resume(ctx context.Context) error {
	st, tail, err := w.d.readPending(ctx, w.pendingKey)
	if err != nil {
		return err
	}
	obj, err := w.d.head(ctx, w.key)
	if err != nil {
		return err
	}
	if st != nil {
		if st.base == obj.identity() {
			etags, ok, err := w.d.listParts(ctx, w.key, st)
			if err != nil {
				return err
			}
			if ok {
				w.partSize = st.partSize
				w.uploadID = st.uploadID
				w.etags = etags
				w.buf.B = tail
				w.durable = len(tail)
				w.size = int64(st.parts)*st.partSize + int64(len(tail))
				w.base = st.base
				w.hasPending = true
				return nil
			}
		}
		// The file was replaced since (stale), or the upload is gone
		// (aborted by a lifecycle rule): what it held is lost.
		if err := w.d.discardPending(ctx, w.pendingKey, w.key, st); err != nil {
			return err
		}
	}
	if obj == nil {
		return notFound(w.path)
	}
	return w.continueCommitted(ctx, obj)
}

// continueCommitted makes the committed file obj the start of this
// writer's content: its full parts are copied into a new upload by the
// server, and the rest is read into the buffer.
func (w *writer) continueCommitted(ctx context.Context, obj *object) error {
	w.base = obj.identity()
	full := obj.size / w.partSize
	tailStart := full * w.partSize
	if full > 0 {
		if err := w.createUpload(ctx); err != nil {
			return err
		}
		parts, err := w.d.copyParts(ctx, w.key, w.uploadID, w.key, obj.etag, 0, tailStart, w.partSize, 1)
		if err != nil {
			w.abandonUpload()
			return err
		}
		for _, part := range parts {
			w.etags = append(w.etags, aws.ToString(part.ETag))
		}
	}
	if obj.size > tailStart {
		out, err := w.d.client.GetObject(ctx, &s3.GetObjectInput{
			Bucket:  &w.d.bucket,
			Key:     &w.key,
			IfMatch: &obj.etag,
			Range:   aws.String(fmt.Sprintf("bytes=%d-", tailStart)),
		})
		if err != nil {
			w.abandonUpload()
			return err
		}
		n := obj.size - tailStart
		w.buf.Grow(int(n), w.partSize, &w.d.bufs)
		w.buf.B = w.buf.B[:n]
		_, err = io.ReadFull(out.Body, w.buf.B)
		out.Body.Close()
		if err != nil {
			w.abandonUpload()
			return err
		}
	}
	w.size = obj.size
	w.durable = len(w.buf.B)
	if full > 0 {
		// The upload exists now; record it with the state.
		if err := w.persist(ctx, w.buf.B); err != nil {
			w.abandonUpload()
			return err
		}
	}
	return nil
}

// abandonUpload aborts the writer's upload, which holds nothing needed.
func (w *writer) abandonUpload() {
	if w.uploadID != "" {
		w.d.abort(w.key, w.uploadID)
		w.uploadID = ""
	}
}

// Write buffers p and uploads every part it completes. On an error, the
// bytes of the part that failed are not taken: n counts only bytes that
// are in a part or in the buffer.
func (w *writer) Write(p []byte) (int, error) {
	if w.state != stateOpen {
		return 0, driver.ErrClosed
	}
	n, err := w.buf.Write(p, w.partSize, &w.d.bufs, func(part []byte) error { return w.uploadPart(w.ctx, part) })
	w.size += int64(n)
	if n > 0 {
		w.dirty = true
	}
	if err != nil {
		return n, wrap("write", w.path, err)
	}
	return n, nil
}

// uploadPart uploads data as the next part, creating the upload first if
// needed.
func (w *writer) uploadPart(ctx context.Context, data []byte) error {
	if len(w.etags) == MaxParts {
		return fmt.Errorf("file exceeds %d parts of %d bytes", MaxParts, w.partSize)
	}
	if w.uploadID == "" {
		if err := w.createUpload(ctx); err != nil {
			return err
		}
		// Record the upload before any part goes in, so that a Delete
		// finds it even if this process dies. The state stays what is
		// already stored, with the upload added.
		if err := w.persist(ctx, w.buf.B[:w.durable]); err != nil {
			w.abandonUpload()
			return err
		}
	}
	num := int32(len(w.etags) + 1)
	out, err := w.d.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        &w.d.bucket,
		Key:           &w.key,
		UploadId:      &w.uploadID,
		PartNumber:    &num,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return err
	}
	w.etags = append(w.etags, aws.ToString(out.ETag))
	return nil
}

func (w *writer) createUpload(ctx context.Context) error {
	out, err := w.d.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &w.d.bucket, Key: &w.key})
	if err != nil {
		return err
	}
	w.uploadID = aws.ToString(out.UploadId)
	return nil
}

// persist stores the state: the upload, the parts so far and tail.
func (w *writer) persist(ctx context.Context, tail []byte) error {
	st := pending{uploadID: w.uploadID, parts: len(w.etags), partSize: w.partSize, base: w.base}
	if err := w.d.putObject(ctx, w.pendingKey, tail, st.metadata()); err != nil {
		return err
	}
	w.hasPending = true
	return nil
}

// Size implements driver.FileWriter.
func (w *writer) Size() int64 { return w.size }

// Close stores the state for a later Writer(path, true): the pending
// object with the buffered bytes. A writer that wrote nothing since it
// resumed has nothing to store.
func (w *writer) Close() error {
	if w.state != stateOpen {
		w.buf.Release(&w.d.bufs) // after a failed Commit, which keeps it for Cancel
		return nil
	}
	w.state = stateClosed
	defer w.buf.Release(&w.d.bufs)
	if !w.dirty {
		return nil
	}
	if err := w.persist(w.ctx, w.buf.B); err != nil {
		return wrap("close", w.path, err)
	}
	return nil
}

// Commit makes the content the file: one PutObject if it never filled a
// part, else the last part and CompleteMultipartUpload. Either replaces
// the file atomically, so a failed Commit leaves the old file.
func (w *writer) Commit(ctx context.Context) error {
	if w.state != stateOpen {
		return driver.ErrClosed
	}
	w.state = stateCommitFailed
	if w.uploadID == "" || len(w.etags) == 0 {
		// Smaller than a part: one PutObject. An upload whose first
		// part failed is dropped once the file is in place.
		if err := w.d.putObject(ctx, w.key, w.buf.B, nil); err != nil {
			return wrap("commit", w.path, err)
		}
		w.abandonUpload()
	} else {
		if len(w.buf.B) > 0 {
			if err := w.uploadPart(ctx, w.buf.B); err != nil {
				return wrap("commit", w.path, err)
			}
			w.buf.B = w.buf.B[:0]
		}
		parts := make([]types.CompletedPart, len(w.etags))
		for i, etag := range w.etags {
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: aws.String(etag)}
		}
		if err := w.d.complete(ctx, w.key, w.uploadID, parts); err != nil {
			return wrap("commit", w.path, err)
		}
	}
	w.state = stateClosed
	w.buf.Release(&w.d.bufs)
	if w.hasPending {
		// The file is committed whatever happens now. A pending object
		// that survives is stale (the file changed) and is discarded by
		// the next writer or Delete.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = w.d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.d.bucket, Key: &w.pendingKey})
	}
	return nil
}

// Cancel discards the content: the upload, the pending object and, unless
// it was replaced in the meantime, the committed file this writer's
// content started from or was to replace.
func (w *writer) Cancel(ctx context.Context) error {
	if w.state == stateClosed {
		return driver.ErrClosed
	}
	w.state = stateClosed
	w.buf.Release(&w.d.bufs)
	if w.uploadID != "" {
		if err := w.d.abortUpload(ctx, w.key, w.uploadID); err != nil {
			return wrap("cancel", w.path, err)
		}
	}
	if w.hasPending {
		if _, err := w.d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.d.bucket, Key: &w.pendingKey}); err != nil {
			return wrap("cancel", w.path, err)
		}
	}
	if w.base != "" {
		obj, err := w.d.head(ctx, w.key)
		if err != nil {
			return wrap("cancel", w.path, err)
		}
		if obj.identity() == w.base {
			if _, err := w.d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.d.bucket, Key: &w.key}); err != nil {
				return wrap("cancel", w.path, err)
			}
		}
	}
	return nil
}

// readPending returns the pending state stored at key and its tail, or nil
// if there is none.
func (d *Driver) readPending(ctx context.Context, key string) (*pending, []byte, error) {
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	defer out.Body.Close()
	st, err := parsePending(out.Metadata, aws.ToInt64(out.ContentLength))
	if err != nil {
		return nil, nil, err
	}
	tail := make([]byte, aws.ToInt64(out.ContentLength))
	if _, err := io.ReadFull(out.Body, tail); err != nil {
		return nil, nil, err
	}
	return st, tail, nil
}

// headPending is readPending without the tail.
func (d *Driver) headPending(ctx context.Context, key string) (*pending, error) {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return parsePending(out.Metadata, aws.ToInt64(out.ContentLength))
}

// discardPending aborts the upload of st, the pending state at pendingKey
// for the file at key, and removes the pending object.
func (d *Driver) discardPending(ctx context.Context, pendingKey, key string, st *pending) error {
	if st.uploadID != "" {
		if err := d.abortUpload(ctx, key, st.uploadID); err != nil {
			return err
		}
	}
	_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: &pendingKey})
	return err
}

// discardPendingKey is discardPending for the pending object at
// pendingKey, if there is one. One that cannot be parsed is removed all
// the same.
func (d *Driver) discardPendingKey(ctx context.Context, pendingKey string) error {
	st, err := d.headPending(ctx, pendingKey)
	if errors.Is(err, errCorruptPending) {
		st, err = &pending{}, nil
	}
	if err != nil {
		return err
	}
	if st == nil {
		return nil // there is none
	}
	key := d.root + strings.TrimPrefix(pendingKey, d.root+pendingDir)
	return d.discardPending(ctx, pendingKey, key, st)
}

// listParts returns the ETags of parts 1..st.parts of st's upload. ok is
// false if the upload is gone or lacks one of them. Parts after those are
// leftovers of a writer that died before its Close; they are overwritten
// or left out of the completed file.
func (d *Driver) listParts(ctx context.Context, key string, st *pending) (etags []string, ok bool, err error) {
	if st.uploadID == "" {
		return nil, true, nil
	}
	etags = make([]string, st.parts)
	found := 0
	pages := s3.NewListPartsPaginator(d.client, &s3.ListPartsInput{Bucket: &d.bucket, Key: &key, UploadId: &st.uploadID})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			if isNoSuchUpload(err) {
				return nil, false, nil
			}
			return nil, false, err
		}
		for _, part := range page.Parts {
			num := int(aws.ToInt32(part.PartNumber))
			if num < 1 || num > st.parts {
				continue
			}
			if aws.ToInt64(part.Size) != st.partSize {
				return nil, false, nil
			}
			if etags[num-1] == "" {
				found++
			}
			etags[num-1] = aws.ToString(part.ETag)
		}
	}
	return etags, found == st.parts, nil
}
