package registry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// fullDriver is a driver whose files may hold at most limit bytes each: past it, writes fail
// as on a full disk.
type fullDriver struct {
	driver.Driver
	limit int64
}

func (d *fullDriver) Writer(ctx context.Context, p string, appendTo bool) (driver.FileWriter, error) {
	w, err := d.Driver.Writer(ctx, p, appendTo)
	if err != nil {
		return nil, err
	}
	return &fullWriter{FileWriter: w, d: d}, nil
}

type fullWriter struct {
	driver.FileWriter
	d *fullDriver
}

func (w *fullWriter) Write(p []byte) (int, error) {
	if w.Size()+int64(len(p)) > w.d.limit {
		return 0, fmt.Errorf("write: %w: %w", driver.ErrNoSpace, syscall.ENOSPC)
	}
	return w.FileWriter.Write(p)
}

// TestDiskFull checks the answers of uploads that run out of space: 507 naming the blob
// storage, and nothing kept of them (a session is discarded), while smaller uploads work.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	drv := &fullDriver{Driver: inmemory.New(), limit: 1 << 20}
	e := newEnvWith(t, drv, filepath.Join(t.TempDir(), "metadata.db"), Options{})
	big := bytes.Repeat([]byte("b"), 2<<20)
	d := digest.FromBytes(big)
	full := func(res *response, what string) {
		t.Helper()
		wantError(t, res, http.StatusInsufficientStorage, "UNAVAILABLE")
		if !strings.Contains(string(res.Body), "blob storage") {
			t.Errorf("%s: the message does not name the blob storage: %s", what, res.Body)
		}
	}
	full(e.do(req{Method: "POST", Path: "/v2/full/blobs/uploads/?digest=" + d.String(), Body: big}), "monolithic")
	res := e.do(req{Method: "POST", Path: "/v2/full/blobs/uploads/"})
	wantStatus(t, res, http.StatusAccepted)
	loc := res.Header.Get("Location")
	full(e.do(req{Method: "PATCH", Path: loc, Body: big}), "chunk")
	wantError(t, e.get(loc), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	if paths, err := drv.List(t.Context(), "/uploads"); err == nil && len(paths) > 0 {
		t.Errorf("the failed uploads left %q", paths)
	}
	small := []byte("fits")
	e.pushBlob("full", small)
	e.wantBlob("full", digest.FromBytes(small), small)
}
