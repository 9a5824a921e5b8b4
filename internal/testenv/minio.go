package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MinIO is an empty bucket on a MinIO server, with what an S3 client needs
// to reach it.
type MinIO struct {
	// Endpoint is the server's URL, "http://127.0.0.1:PORT". Buckets are
	// addressed path-style.
	Endpoint  string
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
}

// StartMinIO returns a new, empty bucket on a MinIO server. The bucket and
// everything in it are removed when tb ends.
//
// The first call starts a server private to the test binary: the minio
// binary found on PATH, else in $PEERS_BIN or ~/.cache/registry-peers/bin
// (where ../shared/tools/install-peers.sh minio puts it), serving a
// temporary directory on 127.0.0.1 and free ports. Later calls, from any
// test and in parallel, share it and get a bucket each. The server stops
// and its directory is removed when the test binary exits, however it
// exits.
//
// Without the binary the test is skipped with the reason, except in CI
// (CI=true), where a missing dependency fails it.
func StartMinIO(tb testing.TB) MinIO {
	tb.Helper()
	srv, err := sharedMinIO()
	if err != nil {
		if errors.Is(err, errMinIOMissing) {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("MinIO is required in CI: %v", err)
			}
			tb.Skipf("MinIO not available: %v (build it with bash ../shared/tools/install-peers.sh minio)", err)
		}
		tb.Fatalf("start MinIO: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := fmt.Sprintf("test-%d", srv.nextBucket.Add(1))
	if err := srv.bucketRequest(ctx, http.MethodPut, bucket, nil); err != nil {
		tb.Fatalf("create bucket %s: %v", bucket, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// MinIO's extension: remove the bucket with its objects.
		force := http.Header{"X-Minio-Force-Delete": {"true"}}
		if err := srv.bucketRequest(ctx, http.MethodDelete, bucket, force); err != nil {
			tb.Errorf("remove bucket %s: %v", bucket, err)
		}
	})
	return MinIO{
		Endpoint:  srv.endpoint,
		Region:    minioRegion,
		AccessKey: minioUser,
		SecretKey: srv.password,
		Bucket:    bucket,
	}
}

// errMinIOMissing marks the errors that mean the binary is not installed,
// as opposed to a server that failed to start.
var errMinIOMissing = errors.New("MinIO is missing")

// sharedMinIO starts the test binary's server on first use and returns it,
// or the error that stopped it, to every caller. Like the PostgreSQL
// server it belongs to the whole binary, so it is package state.
var sharedMinIO = sync.OnceValues(startMinIO)

const (
	minioUser   = "berth-test"
	minioRegion = "us-east-1"
	// minioStartTimeout bounds the wait for the server to answer.
	minioStartTimeout = 2 * time.Minute
)

type minioServer struct {
	endpoint   string
	password   string
	nextBucket atomic.Int64
	client     *http.Client

	// control is the write end of the supervisor's stdin; the server
	// stops when it is closed, which the kernel does when the binary
	// exits (see supervisor in postgres.go).
	control *os.File
}

// startMinIO finds the binary and starts the server in a new temporary
// directory, retrying with other ports if one it picked was taken in the
// meantime.
func startMinIO() (*minioServer, error) {
	bin, err := findMinIO()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), minioStartTimeout)
	defer cancel()
	password, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		srv, err := runMinIO(ctx, bin, password)
		if err == nil {
			return srv, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			return nil, err
		}
	}
}

// runMinIO starts one server under the supervisor and waits until it
// answers. On error the server is stopped and its directory removed.
func runMinIO(ctx context.Context, bin, password string) (_ *minioServer, err error) {
	dir, err := os.MkdirTemp("", "berth-minio-")
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Kept open so the log can be read after the supervisor removed the
	// directory.
	logFile, err := os.CreateTemp(dir, "minio-*.log")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()

	sup := exec.Command("/bin/sh", "-c", supervisor, "supervisor", dir,
		bin, "server", filepath.Join(dir, "data"),
		"--address", net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)),
		"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(consolePort)),
	)
	sup.Env = minioEnv(dir, password)
	sup.Stdout, sup.Stderr = logFile, logFile
	// Its own process group, so a ^C reaches the test binary only, whose
	// exit then stops the server.
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
		return nil, fmt.Errorf("start minio: %w", err)
	}
	exited := &exitStatus{done: make(chan struct{})}
	go func() {
		exited.err = sup.Wait()
		close(exited.done)
	}()

	srv := &minioServer{
		endpoint: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort)),
		password: password,
		client:   &http.Client{Timeout: 30 * time.Second},
		control:  w,
	}
	defer func() {
		if err != nil {
			srv.control.Close()
			<-exited.done
			log := readLog(logFile)
			if strings.Contains(log, "already in use") {
				err = fmt.Errorf("%w: %v", errPortTaken, err)
			}
			err = fmt.Errorf("%w\nserver log:\n%s", err, log)
		}
	}()
	if err := srv.waitReady(ctx, exited); err != nil {
		return nil, err
	}
	return srv, nil
}

// waitReady polls the liveness endpoint until it answers 200, the server
// exits or ctx ends. A live server may still refuse S3 requests for a
// moment while it initialises; bucketRequest waits for that.
func (srv *minioServer) waitReady(ctx context.Context, exited *exitStatus) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.endpoint+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		resp, err := srv.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("liveness check: %s", resp.Status)
		}
		select {
		case <-exited.done:
			return fmt.Errorf("minio exited before it was live: %v", exited.err)
		case <-ctx.Done():
			return fmt.Errorf("minio was not live within %v: %w", minioStartTimeout, err)
		case <-tick.C:
		}
	}
}

// bucketRequest sends a signed request for bucket (create with PUT,
// remove with DELETE), polling while the server answers 503 because it is
// still initialising.
func (srv *minioServer) bucketRequest(ctx context.Context, method, bucket string, header http.Header) error {
	emptySHA := sha256.Sum256(nil)
	payload := hex.EncodeToString(emptySHA[:])
	creds := aws.Credentials{AccessKeyID: minioUser, SecretAccessKey: srv.password}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, method, srv.endpoint+"/"+bucket, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("X-Amz-Content-Sha256", payload)
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, payload, "s3", minioRegion, time.Now()); err != nil {
			return err
		}
		resp, err := srv.client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		err = fmt.Errorf("%s %s: %s: %s", method, bucket, resp.Status, body)
		if resp.StatusCode != http.StatusServiceUnavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (server still initialising when the time ran out)", err)
		case <-tick.C:
		}
	}
}

// findMinIO returns the path of the minio binary.
func findMinIO() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("PEERS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "registry-peers", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "minio"); executable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no minio on PATH or in %s", errMinIOMissing, strings.Join(dirs, ", "))
}

// minioEnv is the server's environment: this process's without MINIO_*
// settings that would change it, with the credentials, no web console, no
// update checks, and HOME in the server's directory (MinIO keeps its
// configuration there).
func minioEnv(dir, password string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MINIO_") || strings.HasPrefix(kv, "HOME=")
	})
	return append(env,
		"HOME="+dir,
		"MINIO_ROOT_USER="+minioUser,
		"MINIO_ROOT_PASSWORD="+password,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
}
