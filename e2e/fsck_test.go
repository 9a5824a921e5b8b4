package e2e

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// runFsck runs berth fsck on a data directory and returns its output and exit code.
func runFsck(t *testing.T, data string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(berthBinary(t), append([]string{"fsck", "--data", data}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("berth fsck: %v\n%s", err, out.String())
	return "", 0
}

// TestFsck corrupts a blob's bytes and a manifest's row in the metadata database and checks
// that berth fsck finds both (exit code 5), that --repair takes them out of service, and that
// the registry then answers "not found" for them and accepts them pushed again.
func TestFsck(t *testing.T) {
	t.Parallel()
	srv := startBerth(t)
	c := newClient(t, srv)
	img := newImage(t, "linux", "amd64", 2)
	img2 := newImage(t, "linux", "arm64", 1)
	c.pushImage("fsck/app", "v1", img)
	c.pushImage("fsck/other", "v2", img2)
	srv.Stop()

	if out, code := runFsck(t, srv.DataDir); code != 0 || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("fsck of an intact registry: exit %d\n%s", code, out)
	}

	// A layer's bytes rot on disk.
	layer := img.Layers[1]
	hex := strings.TrimPrefix(layer.Digest(), "sha256:")
	blobFile := filepath.Join(srv.DataDir, "storage", "data", "blobs", "sha256", hex[:2], hex, "data")
	data, err := os.ReadFile(blobFile)
	if err != nil {
		t.Fatalf("the layer's file: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blobFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A manifest's row is damaged in the database.
	db, err := sql.Open("sqlite", filepath.Join(srv.DataDir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE manifests SET content = CAST(? AS BLOB) WHERE digest = ?`,
		append(bytes.Clone(img2.Manifest.Data), ' '), img2.Manifest.Digest())
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("corrupting the manifest row: %v (%d rows)", err, n)
	}
	db.Close()

	out, code := runFsck(t, srv.DataDir)
	if code != 5 {
		t.Fatalf("fsck of a damaged registry: exit %d, want 5\n%s", code, out)
	}
	for _, want := range []string{"corrupt-blob " + layer.Digest(), "corrupt-manifest fsck/other@" + img2.Manifest.Digest()} {
		if !strings.Contains(out, want) {
			t.Errorf("fsck output lacks %q:\n%s", want, out)
		}
	}
	out, code = runFsck(t, srv.DataDir, "--repair")
	if code != 5 || strings.Count(out, "quarantine") < 2 {
		t.Fatalf("fsck --repair: exit %d, want 5 with both quarantined\n%s", code, out)
	}
	if out, code := runFsck(t, srv.DataDir); code != 0 {
		t.Fatalf("fsck after the repair: exit %d\n%s", code, out)
	}

	srv.Restart()
	if st := c.blobStatus("fsck/app", layer.Digest()); st != 404 {
		t.Errorf("the quarantined layer answers %d, want 404", st)
	}
	if st := c.manifestStatus("fsck/other", "v2"); st != 404 {
		t.Errorf("the tag of the quarantined manifest answers %d, want 404", st)
	}
	c.checkImage("fsck/app", image{Config: img.Config, Layers: img.Layers[:1], Manifest: img.Manifest})
	// Pushed again, both are whole.
	c.pushImage("fsck/app", "v1", img)
	c.checkImage("fsck/app", img)
	c.pushImage("fsck/other", "v2", img2)
	c.checkImage("fsck/other", img2)
}
