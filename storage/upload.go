package storage

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
)

// RangeError reports a chunk that does not start where the data received so
// far ends. Size is the current length of the upload.
type RangeError struct{ Size int64 }

func (e *RangeError) Error() string {
	return fmt.Sprintf("chunk must start at offset %d", e.Size)
}

// uploadInfo is the persisted state of a session. The hash state lets a
// resumed session (after a restart, or on another replica) go on hashing
// where the last request stopped instead of re-reading everything.
type uploadInfo struct {
	Repo      string    `json:"repo"`
	StartedAt time.Time `json:"startedAt"`
	// HashOffset is the number of bytes HashState has consumed.
	HashOffset int64  `json:"hashOffset"`
	HashState  []byte `json:"hashState,omitempty"`
}

// Upload describes a session.
type Upload struct {
	ID        string
	Repo      string
	Size      int64
	StartedAt time.Time
}

func uploadDir(id string) string  { return "/uploads/" + id }
func uploadData(id string) string { return uploadDir(id) + "/data" }
func uploadInfoPath(id string) string {
	return uploadDir(id) + "/info"
}

// Uploads move data in buffers of copyBufSize, at most copyBufCount of
// them per request: small enough that many concurrent uploads stay cheap
// in memory, large enough that one read from a socket rarely fills one.
const (
	copyBufSize  = 64 << 10
	copyBufCount = 4
	// pipeThreshold is how much of a body is hashed inline before a
	// second goroutine takes over the hashing: below it, starting one
	// costs more than it saves.
	pipeThreshold = 1 << 20
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// lock serialises work on one session within this process. While body
// (which may be nil) is being written under the lock, cancelling the
// session aborts it if it is an Aborter.
func (s *Store) lock(id string, body io.Reader) func() {
	l := s.ref(id)
	l.mu.Lock()
	return s.held(id, l, body)
}

// tryLock is lock without waiting: ok is false while another request
// holds the session.
func (s *Store) tryLock(id string) (unlock func(), ok bool) {
	l := s.ref(id)
	if !l.mu.TryLock() {
		s.unref(id, l)
		return nil, false
	}
	return s.held(id, l, nil), true
}

func (s *Store) ref(id string) *uploadLock {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[id]
	if l == nil {
		l = &uploadLock{}
		s.locks[id] = l
	}
	l.refs++
	return l
}

func (s *Store) unref(id string, l *uploadLock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(s.locks, id)
	}
}

// held registers body's Abort for the holder of l and returns the unlock.
func (s *Store) held(id string, l *uploadLock, body io.Reader) func() {
	if a, ok := body.(Aborter); ok {
		s.mu.Lock()
		l.abort = a.Abort
		s.mu.Unlock()
	}
	return func() {
		s.mu.Lock()
		l.abort = nil
		s.mu.Unlock()
		l.mu.Unlock()
		s.unref(id, l)
	}
}

// abortWriter stops the body being written into session id, if any.
func (s *Store) abortWriter(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.locks[id]; l != nil && l.abort != nil {
		l.abort()
	}
}

// StartUpload opens a new session for repo.
func (s *Store) StartUpload(ctx context.Context, repo string) (*Upload, error) {
	id := uuid.NewString()
	info := uploadInfo{Repo: repo, StartedAt: time.Now().UTC()}
	if err := s.d.PutContent(ctx, uploadData(id), nil); err != nil {
		return nil, fmt.Errorf("start upload: %w", err)
	}
	if err := s.writeInfo(ctx, id, &info); err != nil {
		_ = s.d.Delete(ctx, uploadDir(id))
		return nil, err
	}
	return &Upload{ID: id, Repo: repo, StartedAt: info.StartedAt}, nil
}

func validUploadID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func (s *Store) readInfo(ctx context.Context, repo, id string) (*uploadInfo, error) {
	if !validUploadID(id) {
		return nil, fmt.Errorf("%w: %q", ErrUploadUnknown, id)
	}
	b, err := s.d.GetContent(ctx, uploadInfoPath(id))
	if errors.Is(err, driver.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read upload %s: %w", id, err)
	}
	var info uploadInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("read upload %s: %w", id, err)
	}
	if info.Repo != repo {
		return nil, fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	return &info, nil
}

func (s *Store) writeInfo(ctx context.Context, id string, info *uploadInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := s.d.PutContent(ctx, uploadInfoPath(id), b); err != nil {
		return fmt.Errorf("save upload %s: %w", id, err)
	}
	return nil
}

// Status returns the session id of repo. It never waits for a request
// writing into the session: while one does, it reports the size the
// session had when the last request before it finished (what a client may
// resume from if the running request fails).
func (s *Store) Status(ctx context.Context, repo, id string) (*Upload, error) {
	info, err := s.readInfo(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	unlock, ok := s.tryLock(id)
	if !ok {
		return &Upload{ID: id, Repo: repo, Size: info.HashOffset, StartedAt: info.StartedAt}, nil
	}
	defer unlock()
	// The writer knows the length: object stores show appended bytes only
	// once they are committed, so Stat would not.
	w, err := s.d.Writer(ctx, uploadData(id), true)
	if errors.Is(err, driver.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	if err != nil {
		return nil, err
	}
	size := w.Size()
	if err := w.Close(); err != nil {
		return nil, err
	}
	return &Upload{ID: id, Repo: repo, Size: size, StartedAt: info.StartedAt}, nil
}

// session is an open session during one request.
type session struct {
	s    *Store
	id   string
	info *uploadInfo
	w    driver.FileWriter
	h    hash.Hash
}

// open reopens session id for appending and restores its hash. start is the
// offset the caller's data begins at, or -1 for "wherever the data ends".
func (s *Store) open(ctx context.Context, repo, id string, start int64) (*session, error) {
	info, err := s.readInfo(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	w, err := s.d.Writer(ctx, uploadData(id), true)
	if errors.Is(err, driver.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	if err != nil {
		return nil, err
	}
	if start >= 0 && start != w.Size() {
		_ = w.Close()
		return nil, &RangeError{Size: w.Size()}
	}
	h := sha256.New()
	restored := false
	if info.HashOffset == w.Size() && len(info.HashState) > 0 {
		restored = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(info.HashState) == nil
	}
	if !restored && w.Size() > 0 {
		// The data and the saved state disagree (the process died between
		// writing one and the other): hash what is really there.
		h = sha256.New()
		if err := s.hashFile(ctx, id, w.Size(), h); err != nil {
			// Object stores cannot read back uncommitted data: such a
			// session cannot be continued, so the client starts over.
			_ = w.Cancel(ctx)
			_ = s.d.Delete(ctx, uploadDir(id))
			return nil, fmt.Errorf("%w: %s cannot be resumed: %v", ErrUploadUnknown, id, err)
		}
	}
	return &session{s: s, id: id, info: info, w: w, h: h}, nil
}

func (s *Store) hashFile(ctx context.Context, id string, size int64, h hash.Hash) error {
	rc, err := s.d.Reader(ctx, uploadData(id), 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(h, io.LimitReader(rc, size), *buf)
	if err != nil {
		return fmt.Errorf("hash upload %s: %w", id, err)
	}
	if n != size {
		return fmt.Errorf("hash upload %s: read %d of %d bytes", id, n, size)
	}
	return nil
}

// write copies body into the session. The request's goroutine reads the
// body and writes the file; past pipeThreshold bytes another goroutine
// hashes what was written, so a large upload goes at the pace of the
// slower of the two rather than of their sum. The hash always covers
// exactly the bytes the file took. Whatever was received is kept even when
// the body breaks off, so the client can resume after it; errors of the
// body are marked ErrSourceBroken, to tell a client that went away from a
// failing backend.
func (ss *session) write(body io.Reader) error {
	if body == nil {
		return nil
	}
	buf := copyBufs.Get().(*[]byte)
	var pipe *hashPipe
	defer func() {
		if pipe != nil {
			pipe.close()
		}
		copyBufs.Put(buf)
	}()
	var total int64
	for {
		n, rerr := body.Read(*buf)
		if n > 0 {
			m, werr := ss.w.Write((*buf)[:n])
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			total += int64(m)
			if pipe == nil && total >= pipeThreshold {
				pipe = newHashPipe(ss.h)
			}
			if pipe != nil {
				buf = pipe.hash(buf, m)
			} else {
				ss.h.Write((*buf)[:m])
			}
			if werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", ErrSourceBroken, rerr)
		}
	}
}

// hashPipe hashes buffers on a goroutine of its own. The buffers circulate
// between the writer and the hasher: at most copyBufCount of them are in
// use by one request.
type hashPipe struct {
	h     hash.Hash
	full  chan hashChunk // buffers waiting to be hashed
	free  chan *[]byte   // hashed buffers, ready to be read into again
	done  chan struct{}
	extra int // buffers taken from the pool besides the writer's first
}

type hashChunk struct {
	buf *[]byte
	n   int
}

func newHashPipe(h hash.Hash) *hashPipe {
	p := &hashPipe{
		h:    h,
		full: make(chan hashChunk, copyBufCount),
		free: make(chan *[]byte, copyBufCount),
		done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		for c := range p.full {
			p.h.Write((*c.buf)[:c.n])
			p.free <- c.buf
		}
	}()
	return p
}

// hash hands over buf, whose first n bytes are to be hashed, and returns
// a buffer to read into next, waiting for one while all are being hashed.
func (p *hashPipe) hash(buf *[]byte, n int) *[]byte {
	p.full <- hashChunk{buf, n}
	if p.extra < copyBufCount-1 {
		p.extra++
		return copyBufs.Get().(*[]byte)
	}
	return <-p.free
}

// close waits until everything handed over is hashed, so that the hash
// may be read, and returns the hashed buffers to the pool.
func (p *hashPipe) close() {
	close(p.full)
	<-p.done
	close(p.free)
	for b := range p.free {
		copyBufs.Put(b)
	}
}

// save closes the writer, keeping the data, and records the hash state.
func (ss *session) save(ctx context.Context) (int64, error) {
	if err := ss.w.Close(); err != nil {
		return 0, err
	}
	size := ss.w.Size()
	state, err := ss.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return 0, err
	}
	ss.info.HashOffset, ss.info.HashState = size, state
	// The data is written: record its state even if the request is being
	// cancelled, or data and state would disagree.
	return size, ss.s.writeInfo(context.WithoutCancel(ctx), ss.id, ss.info)
}

// Append adds body to session id of repo, starting at offset start (-1:
// at the end). A start that is not the current size is a *RangeError. It
// returns the new size.
func (s *Store) Append(ctx context.Context, repo, id string, start int64, body io.Reader) (int64, error) {
	unlock := s.lock(id, body)
	defer unlock()
	ss, err := s.open(ctx, repo, id, start)
	if err != nil {
		return 0, err
	}
	werr := ss.write(body)
	if errors.Is(werr, driver.ErrNoSpace) {
		return 0, ss.discard(ctx, werr)
	}
	size, err := ss.save(ctx)
	if errors.Is(err, driver.ErrNoSpace) {
		return 0, ss.discard(ctx, err)
	}
	if werr != nil {
		return size, fmt.Errorf("upload %s: %w", id, werr)
	}
	return size, err
}

// discard removes a session whose write ran out of space, so that what it
// wrote is freed at once rather than when the session expires: keeping a
// part of an upload on a full disk helps nobody. It returns cause, marked.
func (ss *session) discard(ctx context.Context, cause error) error {
	ctx = context.WithoutCancel(ctx)
	_ = ss.w.Cancel(ctx)
	_ = ss.s.d.Delete(ctx, uploadDir(ss.id))
	return fmt.Errorf("upload %s discarded to free its space: %w", ss.id, cause)
}

// Finish appends body (which may be nil) to session id at start (-1: at the
// end), checks that the whole content has digest expected, and makes it a
// blob. On a digest mismatch the session is discarded and ErrDigestMismatch
// returned. It returns the blob's size.
func (s *Store) Finish(ctx context.Context, repo, id string, start int64, body io.Reader, expected digest.Digest) (int64, error) {
	if err := ValidateDigest(expected); err != nil {
		return 0, err
	}
	unlock := s.lock(id, body)
	defer unlock()
	ss, err := s.open(ctx, repo, id, start)
	if err != nil {
		return 0, err
	}
	if err := ss.write(body); err != nil {
		if errors.Is(err, driver.ErrNoSpace) {
			return 0, ss.discard(ctx, err)
		}
		if _, serr := ss.save(ctx); errors.Is(serr, driver.ErrNoSpace) {
			return 0, ss.discard(ctx, serr)
		}
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	if err := ss.w.Commit(ctx); err != nil {
		if errors.Is(err, driver.ErrNoSpace) {
			return 0, ss.discard(ctx, err)
		}
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	size := ss.w.Size()
	if _, local := s.d.(driver.Opener); !local {
		return s.finishByCopy(ctx, id, expected)
	}
	var got digest.Digest
	if expected.Algorithm() == digest.SHA256 {
		got = digest.NewDigest(digest.SHA256, ss.h)
	} else {
		h := expected.Algorithm().Hash()
		if err := s.hashFile(ctx, id, size, h); err != nil {
			return 0, err
		}
		got = digest.NewDigest(expected.Algorithm(), h)
	}
	if got != expected {
		_ = s.d.Delete(ctx, uploadDir(id))
		return 0, fmt.Errorf("%w: expected %s, content has %s", ErrDigestMismatch, expected, got)
	}
	// Even when the blob is stored already the new copy replaces it (the
	// content is identical): the bytes are then fresh, which garbage
	// collection's grace period protects until the blob is linked.
	if err := s.d.Move(ctx, uploadData(id), blobPath(expected)); err != nil {
		return 0, fmt.Errorf("store blob %s: %w", expected, err)
	}
	if err := s.d.Delete(ctx, uploadDir(id)); err != nil && !errors.Is(err, driver.ErrNotFound) {
		return size, fmt.Errorf("clean upload %s: %w", id, err)
	}
	return size, nil
}

// finishByCopy verifies a committed upload by reading it back, hashing the
// bytes while it writes them to a staging file only this call knows, and
// moves that file into place only if the digest matches. Drivers without
// local files may be shared by several processes (replicas), and nothing
// stops two of them from writing one session at once: this way the bytes
// that become the blob are always the bytes that were hashed, whatever
// the session's saved hash state says.
func (s *Store) finishByCopy(ctx context.Context, id string, expected digest.Digest) (int64, error) {
	rc, err := s.d.Reader(ctx, uploadData(id), 0)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	defer rc.Close()
	h := expected.Algorithm().Hash()
	staging := uploadDir(id) + "/verified-" + uuid.NewString()
	w, err := s.d.Writer(ctx, staging, false)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(w, h), rc, *buf)
	copyBufs.Put(buf)
	got := digest.NewDigest(expected.Algorithm(), h)
	if err != nil || got != expected {
		_ = w.Cancel(ctx)
		_ = s.d.Delete(ctx, uploadDir(id))
		if err != nil {
			return 0, fmt.Errorf("upload %s: %w", id, err)
		}
		return 0, fmt.Errorf("%w: expected %s, content has %s", ErrDigestMismatch, expected, got)
	}
	if err := w.Commit(ctx); err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, err)
	}
	// Replacing a stored copy keeps the bytes fresh for garbage
	// collection's grace period, as in Finish.
	if err := s.d.Move(ctx, staging, blobPath(expected)); err != nil {
		return 0, fmt.Errorf("store blob %s: %w", expected, err)
	}
	if err := s.d.Delete(ctx, uploadDir(id)); err != nil && !errors.Is(err, driver.ErrNotFound) {
		return n, fmt.Errorf("clean upload %s: %w", id, err)
	}
	return n, nil
}

// Put stores body as blob expected in one go (a monolithic upload). On a
// driver that publishes only verified writes (driver.VerifiedWriter: object
// stores), the bytes go straight to the blob's path, hashed on the way, and
// become the blob only if they match: no upload session, no copy to move
// or read back.
func (s *Store) Put(ctx context.Context, repo string, expected digest.Digest, body io.Reader) (int64, error) {
	if err := ValidateDigest(expected); err != nil {
		return 0, err
	}
	if vw, ok := s.d.(driver.VerifiedWriter); ok {
		return s.putVerified(ctx, vw, expected, body)
	}
	u, err := s.StartUpload(ctx, repo)
	if err != nil {
		return 0, err
	}
	size, err := s.Finish(ctx, repo, u.ID, 0, body, expected)
	if err != nil && !errors.Is(err, ErrDigestMismatch) {
		_ = s.d.Delete(ctx, uploadDir(u.ID))
	}
	return size, err
}

// putVerified is Put through a driver.VerifiedWriter.
func (s *Store) putVerified(ctx context.Context, vw driver.VerifiedWriter, expected digest.Digest, body io.Reader) (int64, error) {
	h := expected.Algorithm().Hash()
	src := &sourceReader{r: body}
	var got digest.Digest
	n, err := vw.WriteVerified(ctx, blobPath(expected), io.TeeReader(src, h), func() error {
		got = digest.NewDigest(expected.Algorithm(), h)
		if got != expected {
			return fmt.Errorf("%w: expected %s, content has %s", ErrDigestMismatch, expected, got)
		}
		return nil
	})
	switch {
	case err == nil:
		return n, nil
	case src.err != nil:
		return n, fmt.Errorf("store blob %s: %w: %w", expected, ErrSourceBroken, src.err)
	case errors.Is(err, ErrDigestMismatch):
		return n, err
	}
	return n, fmt.Errorf("store blob %s: %w", expected, err)
}

// sourceReader remembers the error of the body it reads, to tell a client
// that broke off from a failing backend.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// Cancel discards session id of repo. A request writing into the session
// with an Aborter body is stopped first, rather than waited for.
func (s *Store) Cancel(ctx context.Context, repo, id string) error {
	if _, err := s.readInfo(ctx, repo, id); err != nil {
		return err
	}
	s.abortWriter(id)
	unlock := s.lock(id, nil)
	defer unlock()
	if _, err := s.readInfo(ctx, repo, id); err != nil {
		return err
	}
	return s.d.Delete(ctx, uploadDir(id))
}

// PurgeUploads removes sessions started before the cutoff and returns how
// many it removed.
func (s *Store) PurgeUploads(ctx context.Context, cutoff time.Time) (int, error) {
	ids, err := s.d.List(ctx, "/uploads")
	if errors.Is(err, driver.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ids {
		id := p[len("/uploads/"):]
		fi, err := s.d.Stat(ctx, p)
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if b, err := s.d.GetContent(ctx, uploadInfoPath(id)); err == nil {
			var info uploadInfo
			if json.Unmarshal(b, &info) == nil && info.StartedAt.After(cutoff) {
				continue
			}
		}
		unlock := s.lock(id, nil)
		err = s.d.Delete(ctx, p)
		unlock()
		if err == nil {
			n++
		}
	}
	return n, nil
}
