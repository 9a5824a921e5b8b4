package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// emulatorStartTimeout bounds the wait for an emulator to answer.
const emulatorStartTimeout = 2 * time.Minute

// emulator is a cloud storage emulator (fake-gcs-server, Azurite) running
// under the supervisor (see postgres.go) on a free port of 127.0.0.1, with
// a temporary directory that is removed when it stops. Like the other
// servers of this package it belongs to the whole test binary and stops
// when the binary exits, however it exits.
type emulator struct {
	addr    string // 127.0.0.1:PORT
	control *os.File
}

// emulatorSpec says how to run one kind of emulator.
type emulatorSpec struct {
	name string
	// command returns the command line serving dir on port.
	command func(dir string, port int) []string
	env     []string
	// ready reports whether the server at addr answers as it should.
	ready func(ctx context.Context, addr string) error
}

// errEmulatorMissing marks the errors that mean an emulator is not
// installed, as opposed to one that failed to start.
var errEmulatorMissing = errors.New("emulator is missing")

// startEmulator runs spec, retrying with another port if the one it
// picked was taken in the meantime.
func startEmulator(spec emulatorSpec) (*emulator, error) {
	ctx, cancel := context.WithTimeout(context.Background(), emulatorStartTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		e, err := runEmulator(ctx, spec)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 5 {
			return e, err
		}
	}
}

func runEmulator(ctx context.Context, spec emulatorSpec) (_ *emulator, err error) {
	dir, err := os.MkdirTemp("", "berth-"+spec.name+"-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile, err := os.CreateTemp(dir, spec.name+"-*.log")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	args := append([]string{"-c", supervisor, "supervisor", dir}, spec.command(dir, port)...)
	sup := exec.Command("/bin/sh", args...)
	sup.Env = append(os.Environ(), spec.env...)
	sup.Dir = dir
	sup.Stdout, sup.Stderr = logFile, logFile
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sup.Stdin = r
	err = sup.Start()
	r.Close()
	if err != nil {
		w.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	exited := &exitStatus{done: make(chan struct{})}
	go func() {
		exited.err = sup.Wait()
		close(exited.done)
	}()
	e := &emulator{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), control: w}
	defer func() {
		if err != nil {
			e.control.Close()
			<-exited.done
			log := readLog(logFile)
			if strings.Contains(log, "in use") {
				err = fmt.Errorf("%w: %v", errPortTaken, err)
			}
			err = fmt.Errorf("%w\n%s log:\n%s", err, spec.name, log)
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		rerr := spec.ready(ctx, e.addr)
		if rerr == nil {
			return e, nil
		}
		select {
		case <-exited.done:
			return nil, fmt.Errorf("%s exited before it answered: %v", spec.name, exited.err)
		case <-ctx.Done():
			return nil, fmt.Errorf("%s did not answer within %v: %w", spec.name, emulatorStartTimeout, rerr)
		case <-tick.C:
		}
	}
}

// httpReady is a ready check: a request to path answers with status want.
func httpReady(path string, want int) func(ctx context.Context, addr string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context, addr string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
}

// findTool returns the path of binary name: on PATH, else in one of dirs.
// hint says how to install it.
func findTool(name, hint string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var tried []string
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, name); executable(p) {
			return p, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("%w: no %s on PATH or in %s (%s)", errEmulatorMissing, name, strings.Join(tried, ", "), hint)
}

// peersDir is where ../shared/tools installs peers: $envVar, else
// ~/.cache/registry-peers/sub.
func peersDir(envVar, sub string) []string {
	var dirs []string
	if d := os.Getenv(envVar); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "registry-peers", sub))
	}
	return dirs
}

// emulatorOrSkip turns the error of starting an emulator into the test's
// outcome: missing emulators skip the test, except in CI (CI=true), where
// they fail it like any error.
func emulatorOrSkip(tb testing.TB, name string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, errEmulatorMissing) {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is required in CI: %v", name, err)
		}
		tb.Skipf("%s not available: %v", name, err)
	}
	tb.Fatalf("start %s: %v", name, err)
}
