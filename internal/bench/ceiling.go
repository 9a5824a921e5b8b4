package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// The ceiling is the least a server can do for the same requests on this
// machine, measured in the same run: a bare net/http server that, for an
// upload, writes the body to a file on the same disk while it hashes it
// with SHA-256, fsyncs and answers 201 — no session state on disk, no
// metadata, no verification beyond the hash — and, for a manifest GET,
// answers a fixed body with the same headers. berth's figures are reported
// as fractions of it: how close berth comes to what the machine allows,
// which a ratio to a slower peer cannot tell.

// ceilingServer is the ceiling's handler state.
type ceilingServer struct {
	dir      string
	next     atomic.Int64
	mu       sync.Mutex
	sessions map[string]*ceilingSession
	manifest atomic.Pointer[[]byte]
}

type ceilingSession struct {
	f *os.File
	h hash.Hash
}

// ServeCeiling serves the ceiling on addr, keeping blobs under dir, until
// the process ends.
func ServeCeiling(addr, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return err
	}
	s := &ceilingServer{dir: dir, sessions: map[string]*ceilingSession{}}
	if b, err := os.ReadFile(filepath.Join(dir, "manifest")); err == nil {
		s.manifest.Store(&b) // pushed before a restart
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return (&http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}).Serve(ln)
}

func (s *ceilingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		w.WriteHeader(http.StatusOK)
	case strings.Contains(p, "/manifests/"):
		s.manifests(w, r)
	case strings.HasSuffix(p, "/blobs/uploads/") && r.Method == http.MethodPost:
		id := strconv.FormatInt(s.next.Add(1), 10)
		f, err := os.Create(filepath.Join(s.dir, "upload-"+id))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		s.sessions[id] = &ceilingSession{f: f, h: sha256.New()}
		s.mu.Unlock()
		w.Header().Set("Location", p+id)
		w.WriteHeader(http.StatusAccepted)
	case strings.Contains(p, "/blobs/uploads/"):
		s.upload(w, r, p[strings.LastIndexByte(p, '/')+1:])
	case strings.Contains(p, "/blobs/") && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

// upload appends a body to a session (PATCH) and, with PUT, finishes it:
// fsync, check the digest, move the file to its blob path, 201.
func (s *ceilingServer) upload(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		http.NotFound(w, r)
		return
	}
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(io.MultiWriter(ss.f, ss.h), r.Body, buf); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodPatch {
		w.Header().Set("Location", r.URL.Path)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
	defer ss.f.Close()
	want := digest.Digest(r.URL.Query().Get("digest"))
	got := "sha256:" + hex.EncodeToString(ss.h.Sum(nil))
	if err := ss.f.Sync(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if string(want) != got {
		_ = os.Remove(ss.f.Name())
		http.Error(w, fmt.Sprintf("digest %s, want %s", got, want), http.StatusBadRequest)
		return
	}
	dst := filepath.Join(s.dir, "blobs", want.Encoded(), "data")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := os.Rename(ss.f.Name(), dst); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Docker-Content-Digest", got)
	w.WriteHeader(http.StatusCreated)
}

// manifests keeps the last manifest PUT and answers every GET and HEAD with
// it, with the headers a registry sends.
func (s *ceilingServer) manifests(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.manifest.Store(&b)
		if err := os.WriteFile(filepath.Join(s.dir, "manifest"), b, 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(b).String())
		w.WriteHeader(http.StatusCreated)
		return
	}
	bp := s.manifest.Load()
	if bp == nil {
		http.NotFound(w, r)
		return
	}
	b := *bp
	d := digest.FromBytes(b).String()
	h := w.Header()
	h.Set("Content-Type", mediaTypeManifest)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Docker-Content-Digest", d)
	h.Set("Etag", `"`+d+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, bytes.NewReader(b))
	}
}

// CeilingCommand is the subcommand of the bench program that serves the
// ceiling (NewCeiling starts it).
const CeilingCommand = "serve-ceiling"

// NewCeiling returns the ceiling server, run as self (this program) with
// CeilingCommand, keeping its files in dir.
func NewCeiling(self, dir string) *Server {
	return &Server{
		Name:        "ceiling",
		Dir:         dir,
		StorageRoot: dir,
		BlobPath:    func(hex string) string { return filepath.Join(dir, "blobs", hex, "data") },
		command: func(addr string) *exec.Cmd {
			return exec.Command(self, CeilingCommand, addr, dir)
		},
	}
}
