package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPushPullThroughBinary builds this module's berth, serves with the
// aesgcm driver selected by the environment, pushes an image with crane
// and pulls it back: the layer's file comes back whole, and its content
// is nowhere on disk in the clear.
func TestPushPullThroughBinary(t *testing.T) {
	crane := findCrane(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "berth-aesgcm")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	data := filepath.Join(dir, "data")
	var log bytes.Buffer
	srv := exec.Command(bin, "serve", "--addr", addr, "--data", data)
	srv.Env = append(os.Environ(), "BERTH_STORAGE_DRIVER=aesgcm", "BERTH_STORAGE_AESGCM_KEY="+base64.StdEncoding.EncodeToString(key))
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("berth output:\n%s", log.String())
		}
	})
	waitReady(t, addr, exited)

	// A layer holding one file: a marker that must not be on disk, and
	// random bytes (several records' worth).
	marker := []byte("berth-aesgcm-example-marker ")
	content := append(bytes.Repeat(marker, 1000), randomBytes(t, 300_000)...)
	layer := filepath.Join(dir, "layer.tar")
	writeLayer(t, layer, "app/data.bin", content)

	ref := addr + "/demo/app:v1"
	run(t, crane, "append", "--insecure", "-f", layer, "-t", ref)
	out := filepath.Join(dir, "export.tar")
	run(t, crane, "export", "--insecure", ref, out)
	got := readLayerFile(t, out, "app/data.bin")
	if !bytes.Equal(got, content) {
		t.Fatalf("pulled file has %d bytes, want the %d pushed", len(got), len(content))
	}
	digest := strings.TrimSpace(run(t, crane, "digest", "--insecure", ref))
	if !strings.HasPrefix(digest, "sha256:") {
		t.Errorf("crane digest = %q", digest)
	}

	// Nothing under the data directory holds the marker: the layer blob
	// is compressed by crane, so look for its stored bytes too.
	err := filepath.WalkDir(data, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasSuffix(p, ".db") || strings.Contains(p, ".db-") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, marker) {
			t.Errorf("%s holds the layer's content in the clear", p)
		}
		if bytes.Contains(b, []byte(`"mediaType"`)) {
			t.Errorf("%s holds a manifest or config in the clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// findCrane returns the crane binary: on PATH, in $PEERS_BIN or
// ~/.cache/registry-peers/bin, or built by ../shared/tools/install-peers.sh
// beside the repository. Without it the test skips, except in CI.
func findCrane(t *testing.T) string {
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("PEERS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "registry-peers", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "crane"); fileExists(p) {
			return p
		}
	}
	script, _ := filepath.Abs(filepath.Join("..", "..", "..", "shared", "tools", "install-peers.sh"))
	if fileExists(script) {
		out, err := exec.Command("bash", script, "crane").Output()
		if err == nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if p := filepath.Join(lines[len(lines)-1], "crane"); fileExists(p) {
				return p
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("crane is required in CI (bash ../shared/tools/install-peers.sh crane)")
	}
	t.Skip("crane not available (bash ../shared/tools/install-peers.sh crane)")
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls GET /v2/ until it answers 200 or the server exits.
func waitReady(t *testing.T, addr string, exited <-chan error) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth not ready on %s: %v", addr, err)
		}
		select {
		case err := <-exited:
			t.Fatalf("berth exited: %v", err)
		case <-tick.C:
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeLayer(t *testing.T, path, name string, content []byte) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readLayerFile(t *testing.T, path, name string) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s not in %s", name, path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}
