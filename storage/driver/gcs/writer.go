package gcs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/berthhq/berth/storage/driver/internal/parts"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/berthhq/berth/storage/driver"
)

// Metadata of a pending object; its content is the bytes after the last
// full part.
const (
	metaFormat   = "berth-pending" // formatVersion
	metaUpload   = "berth-upload"
	metaParts    = "berth-parts"
	metaPartSize = "berth-part-size"
	metaHead     = "berth-head"
	metaBase     = "berth-base"

	formatVersion = "1"
)

// errCorruptPending marks a pending object this driver cannot read.
var errCorruptPending = errors.New("corrupt pending state")

// pending is the stored state of a writer.
type pending struct {
	upload   string // the id naming the parts; "" before the first
	parts    int    // parts 1..parts hold the content after the head
	partSize int64
	head     int64  // size of the head object (0: none)
	base     string // identity of the committed file it continues, or ""
}

func (st *pending) metadata() map[string]string {
	m := map[string]string{
		metaFormat:   formatVersion,
		metaParts:    strconv.Itoa(st.parts),
		metaPartSize: strconv.FormatInt(st.partSize, 10),
		metaHead:     strconv.FormatInt(st.head, 10),
	}
	if st.upload != "" {
		m[metaUpload] = st.upload
	}
	if st.base != "" {
		m[metaBase] = st.base
	}
	return m
}

func parsePending(meta map[string]string, tailSize int64) (*pending, error) {
	if v := meta[metaFormat]; v != formatVersion {
		return nil, fmt.Errorf("%w: unknown format %q", errCorruptPending, v)
	}
	st := &pending{upload: meta[metaUpload], base: meta[metaBase]}
	var err1, err2, err3 error
	st.parts, err1 = strconv.Atoi(meta[metaParts])
	st.partSize, err2 = strconv.ParseInt(meta[metaPartSize], 10, 64)
	st.head, err3 = strconv.ParseInt(meta[metaHead], 10, 64)
	switch {
	case err1 != nil || err2 != nil || err3 != nil,
		st.partSize < MinPartSize || st.partSize > MaxPartSize,
		st.parts < 0 || st.parts > MaxParts, st.head < 0,
		(st.parts > 0 || st.head > 0) && !validUploadID(st.upload),
		tailSize < 0 || tailSize >= st.partSize:
		return nil, fmt.Errorf("%w: metadata %v with %d bytes", errCorruptPending, meta, tailSize)
	}
	return st, nil
}

func newUploadID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validUploadID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// partKey is the object of part n (from 1) of upload id of p.
func (d *Driver) partKey(p, id string, n int) string {
	return fmt.Sprintf("%s%s/%06d", d.partsPrefix(p), id, n)
}

// headKey is the object holding the committed file upload id continues.
func (d *Driver) headKey(p, id string) string { return d.partsPrefix(p) + id + "/head" }

// Writer implements driver.Driver. With append false any earlier pending
// state of path is discarded, and the committed file, if any, stays
// readable until Commit replaces it. With append true the writer continues
// the pending state left by an earlier writer's Close, in this process or
// another; without one it continues the committed file.
//
// ctx bounds the requests the writer makes on its own: the part uploads of
// Write and the state saved by Close.
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
	upload   string // "" until a part or head is stored
	parts    int
	head     int64
	buf      parts.Buffer // the bytes after the last part; shorter than partSize
	size     int64

	// base is the identity of the committed file this writer's content
	// continues or replaces ("" if there was none).
	base string
	// hasPending: a pending object of ours may exist.
	hasPending bool
	// dirty: the stored state lags behind this writer.
	dirty bool
	state writerState
}

// create prepares a writer that replaces the file.
func (w *writer) create(ctx context.Context) error {
	a, err := w.d.attrs(ctx, w.key)
	if err != nil {
		return err
	}
	if err := w.d.discardPending(ctx, w.path); err != nil {
		return err
	}
	w.base = identity(a)
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
	a, err := w.d.attrs(ctx, w.key)
	if err != nil {
		return err
	}
	if st != nil {
		if st.base == identity(a) {
			ok, err := w.d.partsPresent(ctx, w.path, st)
			if err != nil {
				return err
			}
			if ok {
				w.partSize, w.upload, w.parts, w.head = st.partSize, st.upload, st.parts, st.head
				w.buf.B = tail
				w.size = st.head + int64(st.parts)*st.partSize + int64(len(tail))
				w.base = st.base
				w.hasPending = true
				return nil
			}
		}
		// The file was replaced since (stale), or parts are gone: what
		// the state held is lost.
		if err := w.d.discardPending(ctx, w.path); err != nil {
			return err
		}
	}
	if a == nil {
		return notFound(w.path)
	}
	return w.continueCommitted(ctx, a)
}

// continueCommitted makes the committed file a the start of this
// writer's content: a small one is read into the buffer, a larger one
// is copied by the server into the upload's head.
func (w *writer) continueCommitted(ctx context.Context, a *storage.ObjectAttrs) error {
	w.base = identity(a)
	w.size = a.Size
	src := w.d.obj(w.key).If(storage.Conditions{GenerationMatch: a.Generation})
	if a.Size < w.partSize {
		r, err := src.NewReader(ctx)
		if err != nil {
			return err
		}
		defer r.Close()
		w.buf.Grow(int(a.Size), w.partSize, &w.d.bufs)
		w.buf.B = w.buf.B[:a.Size]
		if _, err := io.ReadFull(r, w.buf.B); err != nil {
			return err
		}
		return nil
	}
	w.upload = newUploadID()
	if _, err := w.d.obj(w.d.headKey(w.path, w.upload)).CopierFrom(src).Run(ctx); err != nil {
		return err
	}
	w.head = a.Size
	w.dirty = true
	return nil
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

// uploadPart stores data as the next part.
func (w *writer) uploadPart(ctx context.Context, data []byte) error {
	if w.parts == MaxParts {
		return fmt.Errorf("file exceeds %d parts of %d bytes", MaxParts, w.partSize)
	}
	if w.upload == "" {
		w.upload = newUploadID()
	}
	if err := w.d.upload(ctx, w.d.obj(w.d.partKey(w.path, w.upload, w.parts+1)), data, nil); err != nil {
		return err
	}
	w.parts++
	return nil
}

// persist stores the state with tail as the pending object's content.
func (w *writer) persist(ctx context.Context, tail []byte) error {
	st := pending{upload: w.upload, parts: w.parts, partSize: w.partSize, head: w.head, base: w.base}
	if err := w.d.upload(ctx, w.d.obj(w.pendingKey), tail, st.metadata()); err != nil {
		return err
	}
	w.hasPending = true
	return nil
}

// Size implements driver.FileWriter.
func (w *writer) Size() int64 { return w.size }

// Close stores the state for a later Writer(path, true). A writer that
// wrote nothing since it resumed has nothing to store.
func (w *writer) Close() error {
	if w.state != stateOpen {
		w.buf.Release(&w.d.bufs)
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

// Commit makes the content the file: one upload if it never filled a
// part, else the last part and a compose of all of them. Either replaces
// the file atomically, so a failed Commit leaves the old file.
func (w *writer) Commit(ctx context.Context) error {
	if w.state != stateOpen {
		return driver.ErrClosed
	}
	w.state = stateCommitFailed
	if w.parts == 0 && w.head == 0 {
		if err := w.d.upload(ctx, w.d.obj(w.key), w.buf.B, nil); err != nil {
			return wrap("commit", w.path, err)
		}
	} else {
		if len(w.buf.B) > 0 {
			if err := w.uploadPart(ctx, w.buf.B); err != nil {
				return wrap("commit", w.path, err)
			}
			w.buf.B = w.buf.B[:0]
		}
		if err := w.compose(ctx); err != nil {
			return wrap("commit", w.path, err)
		}
	}
	w.state = stateClosed
	w.buf.Release(&w.d.bufs)
	// The file is committed whatever happens now; state left over is
	// stale and discarded by the next writer or Delete.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if w.hasPending || w.upload != "" {
		_ = w.d.discardPending(ctx, w.path)
	}
	return nil
}

// compose concatenates the head and the parts into the file, in a tree
// of compose requests of at most maxComposeSources sources each.
func (w *writer) compose(ctx context.Context) error {
	var srcs []*storage.ObjectHandle
	if w.head > 0 {
		srcs = append(srcs, w.d.obj(w.d.headKey(w.path, w.upload)))
	}
	for n := 1; n <= w.parts; n++ {
		srcs = append(srcs, w.d.obj(w.d.partKey(w.path, w.upload, n)))
	}
	for level := 0; len(srcs) > maxComposeSources; level++ {
		var next []*storage.ObjectHandle
		for i := 0; i < len(srcs); i += maxComposeSources {
			group := srcs[i:min(i+maxComposeSources, len(srcs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			dst := w.d.obj(fmt.Sprintf("%s%s/c%d-%06d", w.d.partsPrefix(w.path), w.upload, level, i/maxComposeSources))
			if _, err := dst.ComposerFrom(group...).Run(ctx); err != nil {
				return err
			}
			next = append(next, dst)
		}
		srcs = next
	}
	_, err := w.d.obj(w.key).ComposerFrom(srcs...).Run(ctx)
	return err
}

// Cancel discards the content: the parts, the pending object and, unless
// it was replaced in the meantime, the committed file this writer's
// content continued or was to replace.
func (w *writer) Cancel(ctx context.Context) error {
	if w.state == stateClosed {
		return driver.ErrClosed
	}
	w.state = stateClosed
	w.buf.Release(&w.d.bufs)
	if err := w.d.discardPending(ctx, w.path); err != nil {
		return wrap("cancel", w.path, err)
	}
	if w.base != "" {
		gen, _ := strconv.ParseInt(w.base, 10, 64)
		err := w.d.obj(w.key).If(storage.Conditions{GenerationMatch: gen}).Delete(ctx)
		if err != nil && !isNotFound(err) && httpStatus(err) != http.StatusPreconditionFailed {
			return wrap("cancel", w.path, err)
		}
	}
	return nil
}

// readPending returns the pending state stored at key and its tail, or
// nil if there is none.
func (d *Driver) readPending(ctx context.Context, key string) (*pending, []byte, error) {
	a, err := d.attrs(ctx, key)
	if err != nil || a == nil {
		return nil, nil, err
	}
	st, err := parsePending(a.Metadata, a.Size)
	if err != nil {
		return nil, nil, err
	}
	r, err := d.obj(key).If(storage.Conditions{GenerationMatch: a.Generation}).NewReader(ctx)
	if err != nil {
		if isNotFound(err) || httpStatus(err) == http.StatusPreconditionFailed {
			return nil, nil, fmt.Errorf("pending state %s changed while it was read", key)
		}
		return nil, nil, err
	}
	defer r.Close()
	tail := make([]byte, a.Size)
	if _, err := io.ReadFull(r, tail); err != nil {
		return nil, nil, err
	}
	return st, tail, nil
}

// discardPending removes the pending object of p and the parts of every
// upload of p.
func (d *Driver) discardPending(ctx context.Context, p string) error {
	if _, err := d.deletePrefix(ctx, d.partsPrefix(p)); err != nil {
		return err
	}
	if err := d.obj(d.pendingKey(p)).Delete(ctx); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// partsPresent reports whether the head and parts 1..st.parts of st's
// upload are stored with the sizes st says. Parts after those are
// leftovers of a writer that died before its Close; they are overwritten
// or left out of the file.
func (d *Driver) partsPresent(ctx context.Context, p string, st *pending) (bool, error) {
	if st.parts == 0 && st.head == 0 {
		return true, nil
	}
	prefix := d.partsPrefix(p) + st.upload + "/"
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size"}); err != nil {
		return false, err
	}
	found := 0
	headOK := st.head == 0
	for o, err := range listObjects(ctx, d.bucket, q) {
		if err != nil {
			return false, err
		}
		rel := strings.TrimPrefix(o.Name, prefix)
		if rel == "head" {
			headOK = o.Size == st.head
			continue
		}
		n, err := strconv.Atoi(rel)
		if err != nil || n < 1 || n > st.parts || len(rel) != 6 {
			continue
		}
		if o.Size != st.partSize {
			return false, nil
		}
		found++
	}
	return headOK && found == st.parts, nil
}
