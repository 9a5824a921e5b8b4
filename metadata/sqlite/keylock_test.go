package sqlite

import (
	"path/filepath"
	"testing"
)

func TestTryLockExcludesOtherStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	a, b := openClosed(t, path), openClosed(t, path)
	release, ok, err := a.TryLock(t.Context(), "sync-hub")
	if err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	if _, ok, err := b.TryLock(t.Context(), "sync-hub"); ok || err != nil {
		t.Fatalf("second holder: ok %v, err %v; want refused", ok, err)
	}
	if r, ok, err := b.TryLock(t.Context(), "sync-other"); !ok || err != nil {
		t.Fatalf("another key: %v, %v", ok, err)
	} else {
		r()
	}
	release()
	if r, ok, err := b.TryLock(t.Context(), "sync-hub"); !ok || err != nil {
		t.Fatalf("after release: %v, %v", ok, err)
	} else {
		r()
	}
	if _, _, err := a.TryLock(t.Context(), "../x"); err == nil {
		t.Error("a key with a path in it was taken")
	}
}
