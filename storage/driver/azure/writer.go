package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/berthhq/berth/storage/driver/internal/parts"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/berthhq/berth/storage/driver"
)

// Metadata of a pending blob (names must be identifiers); its content is
// the bytes after the last full block.
const (
	metaFormat    = "berthpending" // formatVersion
	metaUpload    = "berthupload"
	metaBlocks    = "berthblocks"
	metaBlockSize = "berthblocksize"
	metaBase      = "berthbase"

	formatVersion = "1"
)

// errCorruptPending marks a pending blob this driver cannot read.
var errCorruptPending = errors.New("corrupt pending state")

// pending is the stored state of a writer.
type pending struct {
	upload    string // the id in the blocks' ids; "" before the first
	blocks    int    // blocks 1..blocks hold the file's start
	blockSize int64
	base      string // identity of the committed file it continues, or ""
}

func (st *pending) metadata() map[string]*string {
	m := map[string]*string{
		metaFormat:    ptr(formatVersion),
		metaBlocks:    ptr(strconv.Itoa(st.blocks)),
		metaBlockSize: ptr(strconv.FormatInt(st.blockSize, 10)),
	}
	if st.upload != "" {
		m[metaUpload] = ptr(st.upload)
	}
	if st.base != "" {
		// An ETag is quoted; metadata values are plain header values.
		m[metaBase] = ptr(strings.Trim(st.base, `"`))
	}
	return m
}

func ptr[T any](v T) *T { return &v }

// parsePending reads the state from a blob's metadata, whose names come
// back in any case.
func parsePending(meta map[string]*string, tailSize int64) (*pending, error) {
	get := func(k string) string {
		for mk, v := range meta {
			if strings.EqualFold(mk, k) {
				return deref(v)
			}
		}
		return ""
	}
	if v := get(metaFormat); v != formatVersion {
		return nil, fmt.Errorf("%w: unknown format %q", errCorruptPending, v)
	}
	st := &pending{upload: get(metaUpload)}
	if b := get(metaBase); b != "" {
		st.base = `"` + b + `"`
	}
	var err1, err2 error
	st.blocks, err1 = strconv.Atoi(get(metaBlocks))
	st.blockSize, err2 = strconv.ParseInt(get(metaBlockSize), 10, 64)
	switch {
	case err1 != nil || err2 != nil,
		st.blockSize < MinBlockSize || st.blockSize > MaxBlockSize,
		st.blocks < 0 || st.blocks > MaxBlocks,
		st.blocks > 0 && !validUploadID(st.upload),
		tailSize < 0 || tailSize >= st.blockSize:
		return nil, fmt.Errorf("%w: metadata %q with %d bytes", errCorruptPending, get(metaBlocks)+"/"+get(metaBlockSize), tailSize)
	}
	return st, nil
}

func newUploadID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validUploadID(id string) bool {
	_, err := hex.DecodeString(id)
	return err == nil && len(id) == 16
}

// blockID is the id of block n (from 1) of upload id. All ids of a blob
// must have the same length, and these do.
func blockID(id string, n int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", id, n))
}

// identity of a committed file for pending state: its ETag.
func etagIdentity(o *object) string { return o.identity() }

// Writer implements driver.Driver. With append false any earlier pending
// state of path is discarded, and the committed file, if any, stays
// readable until Commit replaces it. With append true the writer continues
// the pending state left by an earlier writer's Close, in this process or
// another; without one it continues the committed file.
//
// ctx bounds the requests the writer makes on its own: the blocks staged
// by Write and the state saved by Close.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	w := &writer{d: d, ctx: ctx, path: p, key: d.key(p), pendingKey: d.pendingKey(p), blockSize: d.blockSize}
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

	blockSize int64
	upload    string
	blocks    int
	buf       parts.Buffer // the bytes after the last block; shorter than blockSize
	size      int64

	// base is the identity of the committed file this writer's content
	// continues or replaces ("" if there was none).
	base       string
	hasPending bool
	dirty      bool
	state      writerState
}

func (w *writer) create(ctx context.Context) error {
	o, err := w.d.props(ctx, w.key)
	if err != nil {
		return err
	}
	if err := w.d.deleteKeys(ctx, []string{w.pendingKey}); err != nil {
		return err
	}
	w.base = etagIdentity(o)
	w.dirty = true // even empty, Close must record that the file was replaced
	return nil
}

func (w *writer) resume(ctx context.Context) error {
	st, tail, err := w.d.readPending(ctx, w.pendingKey)
	if err != nil {
		return err
	}
	o, err := w.d.props(ctx, w.key)
	if err != nil {
		return err
	}
	if st != nil {
		if st.base == etagIdentity(o) {
			ok, err := w.d.blocksStaged(ctx, w.key, st)
			if err != nil {
				return err
			}
			if ok {
				w.blockSize, w.upload, w.blocks = st.blockSize, st.upload, st.blocks
				w.buf.B = tail
				w.size = int64(st.blocks)*st.blockSize + int64(len(tail))
				w.base = st.base
				w.hasPending = true
				return nil
			}
		}
		// The file was replaced since, or the blocks are gone: what the
		// state held is lost.
		if err := w.d.deleteKeys(ctx, []string{w.pendingKey}); err != nil {
			return err
		}
	}
	if o == nil {
		return notFound(w.path)
	}
	return w.continueCommitted(ctx, o)
}

// continueCommitted makes the committed file o the start of this writer's
// content: its full blocks are staged again from it by the server (Put
// Block From URL), and the rest is read into the buffer.
func (w *writer) continueCommitted(ctx context.Context, o *object) error {
	w.base = etagIdentity(o)
	full := o.size / w.blockSize
	tailStart := full * w.blockSize
	if full > 0 {
		src, err := w.d.sasURL(w.key, time.Hour)
		if err != nil {
			return err
		}
		w.upload = newUploadID()
		bb := w.d.blob(w.key)
		for n := 1; n <= int(full); n++ {
			_, err := bb.StageBlockFromURL(ctx, blockID(w.upload, n), src, &blockblob.StageBlockFromURLOptions{
				Range:                          blob.HTTPRange{Offset: int64(n-1) * w.blockSize, Count: w.blockSize},
				SourceModifiedAccessConditions: &blob.SourceModifiedAccessConditions{SourceIfMatch: &o.etag},
			})
			if err != nil {
				return err
			}
			w.blocks++
		}
	}
	if o.size > tailStart {
		resp, err := w.d.c.NewBlobClient(w.key).DownloadStream(ctx, &blob.DownloadStreamOptions{
			Range:            blob.HTTPRange{Offset: tailStart},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &o.etag}},
		})
		if err != nil {
			return err
		}
		n := o.size - tailStart
		w.buf.Grow(int(n), w.blockSize, &w.d.bufs)
		w.buf.B = w.buf.B[:n]
		_, err = io.ReadFull(resp.Body, w.buf.B)
		resp.Body.Close()
		if err != nil {
			return err
		}
	}
	w.size = o.size
	if full > 0 {
		w.dirty = true // record the staged blocks at Close
	}
	return nil
}

// Write buffers p and stages every block it completes. On an error, the
// bytes of the block that failed are not taken.
func (w *writer) Write(p []byte) (int, error) {
	if w.state != stateOpen {
		return 0, driver.ErrClosed
	}
	n, err := w.buf.Write(p, w.blockSize, &w.d.bufs, func(part []byte) error { return w.stage(w.ctx, part) })
	w.size += int64(n)
	if n > 0 {
		w.dirty = true
	}
	if err != nil {
		return n, wrap("write", w.path, err)
	}
	return n, nil
}

// stage stages data as the next block.
func (w *writer) stage(ctx context.Context, data []byte) error {
	if w.blocks == MaxBlocks {
		return fmt.Errorf("file exceeds %d blocks of %d bytes", MaxBlocks, w.blockSize)
	}
	if w.upload == "" {
		w.upload = newUploadID()
	}
	_, err := w.d.blob(w.key).StageBlock(ctx, blockID(w.upload, w.blocks+1), nopCloser{bytes.NewReader(data)}, nil)
	if err != nil {
		return err
	}
	w.blocks++
	return nil
}

func (w *writer) persist(ctx context.Context, tail []byte) error {
	st := pending{upload: w.upload, blocks: w.blocks, blockSize: w.blockSize, base: w.base}
	if err := w.d.put(ctx, w.pendingKey, tail, st.metadata()); err != nil {
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

// Commit makes the content the file: one Put Blob if it never filled a
// block, else the last block and Put Block List. Either replaces the blob
// atomically, so a failed Commit leaves the old file.
func (w *writer) Commit(ctx context.Context) error {
	if w.state != stateOpen {
		return driver.ErrClosed
	}
	w.state = stateCommitFailed
	if w.blocks == 0 {
		if err := w.d.put(ctx, w.key, w.buf.B, nil); err != nil {
			return wrap("commit", w.path, err)
		}
	} else {
		if len(w.buf.B) > 0 {
			if err := w.stage(ctx, w.buf.B); err != nil {
				return wrap("commit", w.path, err)
			}
			w.buf.B = w.buf.B[:0]
		}
		ids := make([]string, w.blocks)
		for i := range ids {
			ids[i] = blockID(w.upload, i+1)
		}
		if _, err := w.d.blob(w.key).CommitBlockList(ctx, ids, nil); err != nil {
			return wrap("commit", w.path, err)
		}
	}
	w.state = stateClosed
	w.buf.Release(&w.d.bufs)
	if w.hasPending {
		// The file is committed whatever happens now; a pending blob
		// that survives is stale and discarded later.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = w.d.deleteKeys(ctx, []string{w.pendingKey})
	}
	return nil
}

// Cancel discards the content: the pending blob and, unless it was
// replaced in the meantime, the committed file this writer's content
// continued or was to replace (with its staged blocks). Blocks staged for
// a file that was never committed stay invisible until Azure discards
// them.
func (w *writer) Cancel(ctx context.Context) error {
	if w.state == stateClosed {
		return driver.ErrClosed
	}
	w.state = stateClosed
	w.buf.Release(&w.d.bufs)
	if err := w.d.deleteKeys(ctx, []string{w.pendingKey}); err != nil {
		return wrap("cancel", w.path, err)
	}
	if w.base != "" {
		if err := w.d.deleteIf(ctx, w.key, azcore.ETag(w.base)); err != nil {
			return wrap("cancel", w.path, err)
		}
	}
	return nil
}

// readPending returns the pending state stored at key and its tail, or
// nil if there is none.
func (d *Driver) readPending(ctx context.Context, key string) (*pending, []byte, error) {
	o, err := d.props(ctx, key)
	if err != nil || o == nil {
		return nil, nil, err
	}
	st, err := parsePending(o.meta, o.size)
	if err != nil {
		return nil, nil, err
	}
	resp, err := d.c.NewBlobClient(key).DownloadStream(ctx, &blob.DownloadStreamOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &o.etag}},
	})
	if err != nil {
		if isNotFound(err) || httpStatus(err) == http.StatusPreconditionFailed {
			return nil, nil, fmt.Errorf("pending state %s changed while it was read", key)
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	tail := make([]byte, o.size)
	if _, err := io.ReadFull(resp.Body, tail); err != nil {
		return nil, nil, err
	}
	return st, tail, nil
}

// blocksStaged reports whether blocks 1..st.blocks of st's upload are
// staged on blob key with the block size. Blocks after those are
// leftovers of a writer that died before its Close; they are staged again
// or left out of the block list.
func (d *Driver) blocksStaged(ctx context.Context, key string, st *pending) (bool, error) {
	if st.blocks == 0 {
		return true, nil
	}
	resp, err := d.blob(key).GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	sizes := map[string]int64{}
	for _, b := range resp.UncommittedBlocks {
		sizes[deref(b.Name)] = deref(b.Size)
	}
	for n := 1; n <= st.blocks; n++ {
		if size, ok := sizes[blockID(st.upload, n)]; !ok || size != st.blockSize {
			return false, nil
		}
	}
	return true, nil
}
