package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a registry process under test.
type Server struct {
	// Name is how the report calls it ("berth", "distribution").
	Name string
	// Dir is the server's data directory.
	Dir string
	// Addr is its 127.0.0.1:PORT.
	Addr string
	// StorageRoot is where its blob files live on disk, for cleanups.
	StorageRoot string
	// BlobPath maps a sha256 hex digest to the blob's file under
	// StorageRoot.
	BlobPath func(hex string) string

	// label names what the server is started for (the workload), for
	// per-workload profiles.
	label string
	// command builds the command that starts the server on addr.
	command func(addr string) *exec.Cmd
	cmd     *exec.Cmd
	done    chan error
	logFile *os.File
}

// URL returns the base URL of the server.
func (s *Server) URL() string { return "http://" + s.Addr }

// Start starts the server on a free loopback port and waits until /v2/
// answers.
func (s *Server) Start(ctx context.Context) error {
	if s.cmd != nil {
		return fmt.Errorf("%s already running", s.Name)
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	s.Addr = addr
	cmd := s.command(addr)
	lf, err := os.OpenFile(filepath.Join(filepath.Dir(s.Dir), s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.cmd, s.logFile = cmd, lf
	s.done = make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.done:
			s.cmd = nil
			lf.Close()
			return fmt.Errorf("%s exited at start: %v (log: %s)", s.Name, err, lf.Name())
		case <-ctx.Done():
			_ = s.Stop()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get(s.URL() + "/v2/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return fmt.Errorf("%s did not answer on %s within a minute", s.Name, addr)
		}
	}
}

// Stop stops the server with SIGTERM, then SIGKILL after ten seconds.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() {
		s.cmd = nil
		s.logFile.Close()
	}()
	if !stopProcess(s.cmd.Process, s.done, syscall.SIGTERM, 10*time.Second) {
		return fmt.Errorf("%s did not stop on SIGTERM", s.Name)
	}
	return nil
}

// stopProcess sends sig to p and waits for done (the result of its Wait);
// after grace it kills p. It reports whether p stopped on sig.
func stopProcess(p *os.Process, done <-chan error, sig os.Signal, grace time.Duration) bool {
	_ = p.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(grace):
		_ = p.Kill()
		<-done
		return false
	}
}

// Restart stops and starts the server, so that its memory figures start
// from a fresh process.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// ResetPeakRSS makes the kernel forget the peak resident set size (VmHWM)
// so far; the next PeakRSS reports the peak from now on.
func (s *Server) ResetPeakRSS() error {
	if s.cmd == nil {
		return errors.New(s.Name + " is not running")
	}
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0)
}

// RSS returns the resident set size now (VmRSS) and the part of it
// mapped from files (RssFile: mostly the binary's own pages), in bytes.
func (s *Server) RSS() (rss, file int64, err error) {
	if s.cmd == nil {
		return 0, 0, errors.New(s.Name + " is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	kb, ok := meminfoKB(string(b), "VmRSS")
	fkb, fok := meminfoKB(string(b), "RssFile")
	if !ok || !fok {
		return 0, 0, errors.New("no VmRSS or RssFile in /proc status")
	}
	return kb << 10, fkb << 10, nil
}

// PeakRSS returns VmHWM, the peak resident set size, in bytes.
func (s *Server) PeakRSS() (int64, error) {
	if s.cmd == nil {
		return 0, errors.New(s.Name + " is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	kb, ok := meminfoKB(string(b), "VmHWM")
	if !ok {
		return 0, errors.New("no VmHWM in /proc status")
	}
	return kb << 10, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// NewBerth returns the berth server: the binary at bin, serving dir.
func NewBerth(bin, dir string, extraEnv ...string) *Server {
	root := filepath.Join(dir, "storage")
	return &Server{
		Name:        "berth",
		Dir:         dir,
		StorageRoot: root,
		BlobPath: func(hex string) string {
			return filepath.Join(root, "data", "blobs", "sha256", hex[:2], hex, "data")
		},
		command: func(addr string) *exec.Cmd {
			cmd := exec.Command(bin, "serve", "--addr", addr, "--data", dir)
			cmd.Env = append(cleanEnv("BERTH_"), "BERTH_LOG_LEVEL=warn")
			cmd.Env = append(cmd.Env, extraEnv...)
			return cmd
		},
	}
}

// DistributionConfig is the configuration the CNCF registry runs with:
// the filesystem driver, deletes enabled (as berth allows them), no blob
// descriptor cache (berth has none), no upload purging or health checks in
// the background, and no access log (berth's is off at level warn).
func DistributionConfig(dir, addr string) string {
	return strings.Join([]string{
		"version: 0.1",
		"log:",
		"  level: error",
		"  accesslog:",
		"    disabled: true",
		"storage:",
		"  filesystem:",
		"    rootdirectory: " + strconv.Quote(dir),
		"  delete:",
		"    enabled: true",
		"  maintenance:",
		"    uploadpurging:",
		"      enabled: false",
		"http:",
		"  addr: " + addr,
		"",
	}, "\n")
}

// NewDistribution returns the CNCF registry: the binary at bin, storing in
// dir/storage, configured by DistributionConfig.
func NewDistribution(bin, dir string) *Server {
	root := filepath.Join(dir, "storage")
	return &Server{
		Name:        "distribution",
		Dir:         dir,
		StorageRoot: root,
		BlobPath: func(hex string) string {
			return filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
		},
		command: func(addr string) *exec.Cmd {
			cfg := filepath.Join(dir, "config.yml")
			// Start is the only caller and reports a failed start; a
			// config that could not be written makes it fail.
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(cfg, []byte(DistributionConfig(root, addr)), 0o644)
			cmd := exec.Command(bin, "serve", cfg)
			cmd.Env = cleanEnv("REGISTRY_")
			return cmd
		},
	}
}

// cleanEnv is the environment without variables that start with prefix,
// so a developer's settings cannot change what is measured.
func cleanEnv(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
