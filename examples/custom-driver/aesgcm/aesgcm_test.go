package aesgcm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/drivertest"
)

func testKey(t testing.TB) string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// TestSuite runs berth's driver suite, the one every driver passes, on
// one shared driver.
func TestSuite(t *testing.T) {
	d, err := New(t.TempDir(), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	drivertest.Run(t, func(*testing.T) driver.Driver { return d })
}

// TestEncryptedAtRest: what lands on disk is not the content, and the
// content does not read back under another key.
func TestEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	d, err := New(dir, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	secret := bytes.Repeat([]byte("a very secret layer "), 10_000)
	w, err := d.Writer(ctx, "/blobs/secret", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(secret); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The one file on disk, wherever the filesystem driver keeps it.
	var file string
	err = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			file = p
		}
		return err
	})
	if err != nil || file == "" {
		t.Fatalf("no file on disk: %v", err)
	}
	stored, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("secret layer")) {
		t.Error("the plaintext is on disk")
	}
	if got, err := d.GetContent(ctx, "/blobs/secret"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("GetContent = %d bytes, %v", len(got), err)
	}
	other, err := New(dir, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.GetContent(ctx, "/blobs/secret"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("GetContent under another key = %v, want ErrCorrupt", err)
	}
	// A flipped bit is caught.
	stored[100] ^= 1
	if err := os.WriteFile(file, stored, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := d.Reader(ctx, "/blobs/secret", 0)
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("reading a tampered file = %v, want ErrCorrupt", err)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"", "required"},
		{"not base64!", "base64"},
		{base64.StdEncoding.EncodeToString([]byte("short")), "16, 24 or 32"},
	} {
		c := Config{Key: tc.key}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(key %q) = %v, want %q", tc.key, err, tc.want)
		}
	}
	c := Config{Key: testKey(t)}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
