package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 30 * time.Second // from exec to GET /v2/ answering 200
	stopTimeout  = 20 * time.Second // from SIGTERM/SIGKILL to process exit
	apiVersion   = "registry/2.0"
)

// server is one berth process (and its successors after Restart) on a fixed address and data
// directory.
type server struct {
	t       testing.TB
	Addr    string // host:port on 127.0.0.1
	DataDir string
	args    []string

	log  *syncBuffer // combined output of every run, replayed into the test log on failure
	runs int

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error         // valid once exited is closed
}

// startBerth runs `berth serve` on a free loopback port with its own data directory and waits
// until it answers GET /v2/. extra is appended to the command line.
func startBerth(t testing.TB, extra ...string) *server {
	t.Helper()
	s := &server{
		t:       t,
		Addr:    freeAddr(t),
		DataDir: t.TempDir(),
		args:    extra,
		log:     &syncBuffer{},
	}
	// Registered after TempDir, so it runs before the data directory is removed.
	t.Cleanup(func() {
		if s.running() {
			s.signal(syscall.SIGKILL)
			s.wait()
		}
		if t.Failed() {
			t.Logf("berth output (%s):\n%s", s.Addr, tail(s.log.String(), 64<<10))
		}
	})
	s.start()
	return s
}

// URL returns the base URL of the server, e.g. http://127.0.0.1:1234.
func (s *server) URL() string { return "http://" + s.Addr }

func (s *server) start() {
	s.t.Helper()
	s.runs++
	args := append([]string{"serve", "--addr", s.Addr, "--data", s.DataDir}, s.args...)
	cmd := exec.Command(berthBinary(s.t), args...)
	fmt.Fprintf(s.log, "=== run %d: berth %v\n", s.runs, args)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start berth: %v", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.exitErr = cmd.Wait()
		close(s.exited)
	}()
	s.waitReady()
}

// waitReady polls GET /v2/ until it answers 200 with the API version header, the process
// exits, or readyTimeout passes.
func (s *server) waitReady() {
	s.t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		resp, err := hc.Get(s.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if got := resp.Header.Get("Docker-Distribution-API-Version"); got != apiVersion {
					s.t.Fatalf("GET /v2/ answered 200 with Docker-Distribution-API-Version %q, want %q", got, apiVersion)
				}
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("berth on %s not ready after %v: last GET /v2/: %s", s.Addr, readyTimeout, last)
		}
		select {
		case <-s.exited:
			s.t.Fatalf("berth exited before it was ready: %v", s.exitErr)
		case <-tick.C:
		}
	}
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *server) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil && s.running() {
		s.t.Errorf("signal %v to berth: %v", sig, err)
	}
}

// wait waits for the process to exit and returns how it exited.
func (s *server) wait() error {
	s.t.Helper()
	select {
	case <-s.exited:
		return s.exitErr
	case <-time.After(stopTimeout):
		s.t.Errorf("berth did not exit within %v; killing it", stopTimeout)
		_ = s.cmd.Process.Kill()
		<-s.exited
		return s.exitErr
	}
}

// Stop sends SIGTERM and waits for the process to exit; a server that does not shut down
// cleanly (exit status 0) fails the test.
func (s *server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
	if err := s.wait(); err != nil {
		s.t.Errorf("berth did not exit cleanly after SIGTERM: %v", err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
	s.wait()
}

// Restart starts a new process on the same address and data directory. The previous one must
// have been stopped or killed.
func (s *server) Restart() {
	s.t.Helper()
	if s.running() {
		s.t.Fatal("Restart while berth is still running")
	}
	s.start()
}

// freeAddr returns a loopback address with a port that was free a moment ago. It prefers a
// port below the kernel's ephemeral range: clients' outgoing connections take ports from that
// range and could grab the port while a server is down between Kill and Restart.
func freeAddr(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const first = 10000
	for i := 0; i < 100 && low > first; i++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(first+rand.IntN(low-first)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pollUntil checks cond every 50ms until it holds or timeout passes, and reports whether it
// held. For conditions that offer nothing to wait on, such as another process's exit.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a process's stdout and stderr).
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced at every write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.buf.Write(p)
}

// waitFor waits until the content satisfies ok, checking at every write, for at most limit
// (a bound against a hang: the writes are the events waited for). It reports whether ok held.
func (b *syncBuffer) waitFor(ok func(string) bool, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		s := b.buf.String()
		if b.written == nil {
			b.written = make(chan struct{})
		}
		ch := b.written
		b.mu.Unlock()
		if ok(s) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return ok(b.String())
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns at most the last n bytes of s, cut at a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[... earlier output cut ...]\n" + s
}
