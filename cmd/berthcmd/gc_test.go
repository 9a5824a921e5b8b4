package berthcmd

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

// TestGCCommand runs `berth gc` against a data directory holding one blob
// that nothing references and that is older than the grace period.
func TestGCCommand(t *testing.T) {
	data := t.TempDir()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BERTH_") {
			k, _, _ := strings.Cut(kv, "=")
			t.Setenv(k, "") // a stray setting of the environment must not reach the command
			os.Unsetenv(k)
		}
	}
	ctx := t.Context()
	dbPath := filepath.Join(data, "metadata.db")
	meta, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	root := filepath.Join(data, "storage")
	drv, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	blobs := storage.New(drv)
	content := "nobody needs this"
	d := digest.FromString(content)
	if _, err := blobs.Put(ctx, "app", d, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := meta.PutBlob(ctx, "app", d, int64(len(content))); err != nil {
		t.Fatal(err)
	}
	// Two days ago, past the default grace period of a day.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().Add(-48 * time.Hour)
	if _, err := db.Exec("UPDATE repo_blobs SET linked_at = ?", old.UnixNano()); err != nil {
		t.Fatal(err)
	}
	hex := d.Encoded()
	if err := os.Chtimes(filepath.Join(root, "data", "blobs", "sha256", hex[:2], hex, "data"), old, old); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := newGCCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"--data", data}, args...))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}

	out, err := run("--dry-run", "-v")
	if err != nil {
		t.Fatalf("berth gc --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"link     app@" + d.String() + " 17 B\n",
		"blob     " + d.String() + " 17 B\n",
		"dry run: would free 1 blob (17 B); would remove 0 manifests, 1 blob link and 0 tags; 1 repository examined\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("berth gc --dry-run -v printed:\n%s\nwant a line %q", out, want)
		}
	}
	if _, err := blobs.Stat(ctx, d); err != nil {
		t.Fatalf("the dry run deleted the blob: %v", err)
	}

	// Another collection holds the lock.
	release, err := meta.LockGC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err == nil || !strings.Contains(err.Error(), "another garbage collection is running") {
		t.Errorf("berth gc while locked: %v\n%s", err, out)
	}
	release()

	out, err = run()
	if err != nil {
		t.Fatalf("berth gc: %v\n%s", err, out)
	}
	if want := "freed 1 blob (17 B); removed 0 manifests, 1 blob link and 0 tags; 1 repository examined\n"; out != want {
		t.Errorf("berth gc printed %q, want %q", out, want)
	}
	if _, err := blobs.Stat(ctx, d); err == nil {
		t.Error("berth gc left the blob")
	}
}
