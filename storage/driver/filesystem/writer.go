package filesystem

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/storage/driver"
)

func newBuffer(f *os.File) *bufio.Writer { return bufio.NewWriterSize(f, writeBufferSize) }

// fileWriter writes straight into the destination file through a bounded
// buffer. Like an *os.File it is meant for one goroutine at a time.
type fileWriter struct {
	d      *Driver
	path   string
	f      *os.File
	buf    *bufio.Writer
	size   int64 // bytes in the file, counting those still in buf
	closed bool

	// behind is the offset up to which write-behind has started the
	// writeback of this writer's data; see writeBehind.
	behind int64
	// opened is the file's size when this writer opened it: write-behind
	// waits only for ranges this writer started.
	opened int64
}

// writeBehindWindow is the unit of write-behind. Each time a full window
// of data has reached the file, its writeback to disk is started and the
// writer waits for the window before it, so a large blob is written to disk
// while it arrives: Commit's fsync finds at most two windows still dirty
// instead of the whole blob, and the page cache holds at most that much
// dirty data per upload.
const writeBehindWindow = 8 << 20

func newFileWriter(d *Driver, p string, f *os.File, size int64) *fileWriter {
	return &fileWriter{d: d, path: p, f: f, size: size, buf: newBuffer(f), behind: size, opened: size}
}

// Write buffers p. Bytes still in the buffer count towards Size, and are
// flushed by Close or Commit.
func (w *fileWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, driver.ErrClosed
	}
	n, err := w.buf.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, wrap("write", w.path, err)
	}
	w.writeBehind()
	return n, nil
}

// writeBehind starts the writeback of each full window of data that has
// reached the file and waits for the window before it. It is an
// optimisation only: durability still comes from the fsync in Commit, so
// failures are left for that fsync to report.
func (w *fileWriter) writeBehind() {
	inFile := w.size - int64(w.buf.Buffered())
	for inFile-w.behind >= writeBehindWindow {
		startWriteback(w.f, w.behind, writeBehindWindow)
		if prev := w.behind - writeBehindWindow; prev >= w.opened {
			waitWriteback(w.f, prev, writeBehindWindow)
		}
		w.behind += writeBehindWindow
	}
}

// Size reports the file length including content of earlier writers.
func (w *fileWriter) Size() int64 { return w.size }

// Close flushes and closes the file, leaving it on disk so that a later
// Writer(path, true) can resume.
func (w *fileWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.buf.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return wrap("close", w.path, err)
	}
	return nil
}

// Commit flushes the buffer and syncs the file and its directory, so the
// content survives a crash once Commit returns. Local disk operations are
// not interruptible, so ctx is not consulted.
func (w *fileWriter) Commit(context.Context) error {
	if w.closed {
		return driver.ErrClosed
	}
	w.closed = true
	err := w.buf.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// The file may be new: its directory entry needs syncing
		// too.
		err = syncDir(filepath.Dir(w.f.Name()))
	}
	if err != nil {
		return wrap("commit", w.path, err)
	}
	return nil
}

// Cancel closes and removes the file, then prunes directories that became
// empty. Buffered bytes are dropped, not written.
func (w *fileWriter) Cancel(context.Context) error {
	if w.closed {
		return driver.ErrClosed
	}
	w.closed = true
	_ = w.f.Close() // the content is being thrown away anyway
	full := w.f.Name()
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrap("cancel", w.path, err)
	}
	w.d.prune(filepath.Dir(full))
	return nil
}
