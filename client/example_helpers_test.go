package client_test

import (
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// exampleRegistry runs berth in this process, in memory, and returns its "127.0.0.1:PORT"
// and a function that stops it.
func exampleRegistry() (host string, stop func()) {
	dir, err := os.MkdirTemp("", "berth-client-example-")
	if err != nil {
		log.Fatal(err)
	}
	meta, err := sqlite.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		log.Fatal(err)
	}
	blobs := storage.New(inmemory.New())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.New(blobs, gc.Guard(meta, blobs), registry.Options{Logger: quiet})
	srv := httptest.NewServer(registry.Handler(reg, registry.HandlerOptions{Logger: quiet}))
	return strings.TrimPrefix(srv.URL, "http://"), func() {
		srv.Close()
		meta.Close()
		os.RemoveAll(dir)
	}
}

// exampleLayout writes a small single-layer image into a new layout, named "hello".
func exampleLayout() (*client.Layout, func()) {
	dir, err := os.MkdirTemp("", "berth-client-layout-")
	if err != nil {
		log.Fatal(err)
	}
	l, err := client.OpenLayout(dir)
	if err != nil {
		log.Fatal(err)
	}
	img := writeImage(exampleTB{}, l, imageSpec{platform: client.Platform{OS: "linux", Architecture: "amd64"},
		layers: []layer{{1, 4096}}})
	if err := l.Tag("hello", img); err != nil {
		log.Fatal(err)
	}
	return l, func() { os.RemoveAll(dir) }
}
