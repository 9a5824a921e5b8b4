// Package aesgcm is a storage driver that keeps files in a local
// directory, their content encrypted and authenticated with AES-GCM under
// a configured key. It is an example of a driver that lives outside
// berth's tree: it implements driver.Driver on top of berth's filesystem
// driver, runs the shared suite (drivertest.Run) in its tests, and is
// registered by this module's main.
//
// # Format
//
// A file is a sequence of records, each sealing up to 64 KiB of the
// plaintext:
//
//	4 bytes    length N of the sealed data (big endian)
//	12 bytes   random nonce
//	N bytes    sealed data (ciphertext and 16-byte tag)
//	8 bytes    plaintext offset at which the record ends (big endian)
//
// The additional data of each record is its plaintext start and end
// offsets, so records cannot be reordered or cut without failing
// authentication, and the last 8 bytes of a file tell its plaintext size.
// A writer seals a record whenever 64 KiB are buffered and when it is
// closed, so an upload resumed after a restart appends records to what
// the previous writer kept. Paths are not encrypted, and a file cut at a
// record boundary reads as a shorter valid file: this driver protects the
// content of blobs at rest, not the layout.
package aesgcm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

const (
	driverName = "aesgcm"
	// recordPlain is the most plaintext one record holds.
	recordPlain = 64 << 10
	headerSize  = 4 + 12
	trailerSize = 8
	tagSize     = 16
)

// ErrCorrupt reports content that fails authentication or is not in the
// driver's format: a wrong key, or a file changed by someone else.
var ErrCorrupt = errors.New("aesgcm: content corrupt or key wrong")

// Config is the driver's configuration section (storage.aesgcm;
// BERTH_STORAGE_AESGCM_KEY and BERTH_STORAGE_AESGCM_DIR in the
// environment).
type Config struct {
	// Key is the AES key, base64: 16, 24 or 32 bytes. Required.
	Key string `yaml:"key"`
	// Dir is where files live; empty means storage.root.
	Dir string `yaml:"dir"`
}

// Validate checks the configuration without touching the disk.
func (c *Config) Validate() error {
	_, err := parseKey(c.Key)
	return err
}

func parseKey(s string) (cipher.AEAD, error) {
	if s == "" {
		return nil, errors.New("key is required (base64 of 16, 24 or 32 random bytes)")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("key is not base64")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key: %d bytes, want 16, 24 or 32", len(key))
	}
	return cipher.NewGCM(block)
}

// Driver encrypts the files of a filesystem driver.
type Driver struct {
	fs   *filesystem.Driver
	aead cipher.AEAD
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver keeping files below dir, encrypted with key
// (base64).
func New(dir, key string) (*Driver, error) {
	aead, err := parseKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	fs, err := filesystem.New(dir)
	if err != nil {
		return nil, err
	}
	return &Driver{fs: fs, aead: aead}, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return driverName }

// additional is a record's additional data: its plaintext range.
func additional(start, end int64) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(start))
	binary.BigEndian.PutUint64(b[8:], uint64(end))
	return b[:]
}

// seal appends the record of plain, which starts at plaintext offset
// start, to dst.
func (d *Driver) seal(dst, plain []byte, start int64) []byte {
	end := start + int64(len(plain))
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(plain)+tagSize))
	dst = append(dst, nonce[:]...)
	dst = d.aead.Seal(dst, nonce[:], plain, additional(start, end))
	return binary.BigEndian.AppendUint64(dst, uint64(end))
}

// sealAll encrypts content as a whole file.
func (d *Driver) sealAll(content []byte) []byte {
	out := make([]byte, 0, len(content)+(len(content)/recordPlain+1)*(headerSize+tagSize+trailerSize))
	for start := 0; start < len(content); start += recordPlain {
		out = d.seal(out, content[start:min(start+recordPlain, len(content))], int64(start))
	}
	return out
}

// plainSize is the plaintext size of file f (the file at p), whose stored
// size is stored: the end offset in its last trailer. Reading it from the
// handle whose size was taken keeps the two consistent while the file is
// replaced.
func plainSize(f io.ReadSeeker, p string, stored int64) (int64, error) {
	if stored == 0 {
		return 0, nil
	}
	if stored < headerSize+tagSize+trailerSize {
		return 0, fmt.Errorf("%w: %s has %d bytes", ErrCorrupt, p, stored)
	}
	if _, err := f.Seek(stored-trailerSize, io.SeekStart); err != nil {
		return 0, err
	}
	var b [trailerSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

// sizeOf opens the file at p for its plaintext size.
func (d *Driver) sizeOf(ctx context.Context, p string) (int64, error) {
	f, stored, err := d.fs.Open(ctx, p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return plainSize(f, p, stored)
}

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	r, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// PutContent implements driver.Driver.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	return d.fs.PutContent(ctx, p, d.sealAll(content))
}

// Reader implements driver.Driver: it skips the records before offset
// by their headers and decrypts from the one that holds it.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	f, stored, err := d.fs.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	size, err := plainSize(f, p, stored)
	if err != nil {
		f.Close()
		return nil, err
	}
	if offset < 0 || offset > size {
		f.Close()
		return nil, fmt.Errorf("%s: read %s at %d of %d bytes: %w", driverName, p, offset, size, driver.ErrInvalidOffset)
	}
	r := &reader{d: d, f: f, path: p, stored: stored}
	if err := r.seek(offset); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// reader decrypts a file record by record.
type reader struct {
	d      *Driver
	f      io.ReadSeekCloser
	path   string
	stored int64
	pos    int64  // stored offset of the next record
	start  int64  // plaintext offset of the next record
	buf    []byte // decrypted plaintext not yet read
	plain  []byte // buf's storage
	sealed []byte
}

// seek positions the reader at plaintext offset off, reading only the
// length of the records before it.
func (r *reader) seek(off int64) error {
	for r.pos < r.stored {
		if _, err := r.f.Seek(r.pos, io.SeekStart); err != nil {
			return err
		}
		var n [4]byte
		if _, err := io.ReadFull(r.f, n[:]); err != nil {
			return r.corrupt(err)
		}
		plain := int64(binary.BigEndian.Uint32(n[:])) - tagSize
		if plain < 0 || plain > recordPlain {
			return r.corrupt(nil)
		}
		if r.start+plain > off {
			break
		}
		r.pos += headerSize + plain + tagSize + trailerSize
		r.start += plain
	}
	if r.pos < r.stored {
		recordStart := r.start
		if err := r.next(); err != nil {
			return err
		}
		r.buf = r.buf[off-recordStart:]
	}
	return nil
}

func (r *reader) corrupt(err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s at %d", ErrCorrupt, r.path, r.pos)
	}
	return fmt.Errorf("%w: %s at %d: %v", ErrCorrupt, r.path, r.pos, err)
}

// next decrypts the record at pos, whose plaintext starts at start, into
// buf, and moves pos and start to the following record.
func (r *reader) next() error {
	if _, err := r.f.Seek(r.pos, io.SeekStart); err != nil {
		return err
	}
	var h [headerSize]byte
	if _, err := io.ReadFull(r.f, h[:]); err != nil {
		return r.corrupt(err)
	}
	n := int(binary.BigEndian.Uint32(h[:4]))
	if n < tagSize || n > recordPlain+tagSize {
		return r.corrupt(nil)
	}
	if cap(r.sealed) < n+trailerSize {
		r.sealed = make([]byte, n+trailerSize)
	}
	sealed := r.sealed[:n+trailerSize]
	if _, err := io.ReadFull(r.f, sealed); err != nil {
		return r.corrupt(err)
	}
	end := int64(binary.BigEndian.Uint64(sealed[n:]))
	plain, err := r.d.aead.Open(r.plain[:0], h[4:], sealed[:n], additional(r.start, end))
	if err != nil || end != r.start+int64(len(plain)) {
		return r.corrupt(err)
	}
	r.plain, r.buf = plain, plain
	r.pos += int64(headerSize + n + trailerSize)
	r.start = end
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.pos >= r.stored {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *reader) Close() error { return r.f.Close() }

// Writer implements driver.Driver. Appending continues the records the
// previous writer left: it closed its last, partial record.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	fw, err := d.fs.Writer(ctx, p, append)
	if err != nil {
		return nil, err
	}
	var size int64
	if fw.Size() > 0 {
		if size, err = d.sizeOf(ctx, p); err != nil {
			_ = fw.Close()
			return nil, err
		}
	}
	return &writer{d: d, fw: fw, size: size, start: size}, nil
}

type writer struct {
	d      *Driver
	fw     driver.FileWriter
	buf    []byte // plaintext of the record being filled
	start  int64  // plaintext offset where buf starts
	size   int64
	sealed []byte
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, driver.ErrClosed
	}
	n := 0
	for len(p) > 0 {
		take := min(recordPlain-len(w.buf), len(p))
		w.buf = append(w.buf, p[:take]...)
		p, n = p[take:], n+take
		w.size += int64(take)
		if len(w.buf) == recordPlain {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush seals the buffered plaintext as a record and writes it.
func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.sealed = w.d.seal(w.sealed[:0], w.buf, w.start)
	if _, err := w.fw.Write(w.sealed); err != nil {
		return err
	}
	w.start += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.flush(); err != nil {
		_ = w.fw.Close()
		return err
	}
	return w.fw.Close()
}

func (w *writer) Commit(ctx context.Context) error {
	if w.closed {
		return driver.ErrClosed
	}
	w.closed = true
	if err := w.flush(); err != nil {
		return err
	}
	return w.fw.Commit(ctx)
}

func (w *writer) Cancel(ctx context.Context) error {
	w.closed = true
	return w.fw.Cancel(ctx)
}

// Stat implements driver.Driver, with the plaintext size of files.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fi, err := d.fs.Stat(ctx, p)
	if err != nil || fi.IsDir() {
		return fi, err
	}
	size, err := d.sizeOf(ctx, p)
	if err != nil {
		return nil, err
	}
	return driver.FileInfoFields{P: fi.Path(), Sz: size, MT: fi.ModTime()}, nil
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) { return d.fs.List(ctx, p) }

// Move implements driver.Driver: records do not depend on the path.
func (d *Driver) Move(ctx context.Context, src, dst string) error { return d.fs.Move(ctx, src, dst) }

// Delete implements driver.Driver.
func (d *Driver) Delete(ctx context.Context, p string) error { return d.fs.Delete(ctx, p) }

// Walk implements driver.Driver, with the plaintext size of files.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	return d.fs.Walk(ctx, p, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return fn(fi)
		}
		size, err := d.sizeOf(ctx, fi.Path())
		if errors.Is(err, driver.ErrNotFound) {
			return nil // removed since the walk listed it
		}
		if err != nil {
			return err
		}
		return fn(driver.FileInfoFields{P: fi.Path(), Sz: size, MT: fi.ModTime()})
	})
}
