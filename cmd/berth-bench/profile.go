package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

// serveProfiledCmd is the hidden subcommand that serves berth with
// profiling. pprof stays out of the berth binary: profiles are for
// benchmark runs only.
const serveProfiledCmd = "serve-profiled"

// serveProfiled serves the registry handler over the same storage and
// metadata as `berth serve --addr A --data D` with the default
// configuration (filesystem storage in D/storage, SQLite metadata in
// D/metadata.db, warnings only in the log), without the layers that serve
// adds around it (connectors, authorization, background garbage
// collection), while recording a CPU profile; on SIGTERM it writes the CPU
// and heap profiles and exits.
func serveProfiled(args []string) error {
	fs := flag.NewFlagSet(serveProfiledCmd, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:5000", "listen address")
	data := fs.String("data", "./berth-data", "data directory")
	cpu := fs.String("cpuprofile", "", "write a CPU profile here")
	mem := fs.String("memprofile", "", "write a heap profile here on exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	drv, err := filesystem.New(filepath.Join(*data, "storage"))
	if err != nil {
		return err
	}
	meta, err := sqlite.Open(filepath.Join(*data, "metadata.db"))
	if err != nil {
		return err
	}
	defer meta.Close()
	blobs := storage.New(drv)
	reg := registry.New(blobs, gc.Guard(meta, blobs), registry.Options{Logger: log})

	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: reg, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if *mem != "" {
		f, err := os.Create(*mem)
		if err != nil {
			return err
		}
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			f.Close()
			return fmt.Errorf("heap profile: %w", err)
		}
		return f.Close()
	}
	return nil
}
