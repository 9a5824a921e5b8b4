package postgres

import (
	"testing"

	"github.com/berthhq/berth/internal/testenv"
)

func TestTryLockAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartPostgres(t)
	ctx := t.Context()
	a, b := openClosed(t, dsn), openClosed(t, dsn)
	release, ok, err := a.TryLock(ctx, "sync-hub")
	if err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, "sync-hub"); ok || err != nil {
		t.Fatalf("second replica: ok %v, err %v; want refused", ok, err)
	}
	if r, ok, err := b.TryLock(ctx, "sync-other"); !ok || err != nil {
		t.Fatalf("another key: %v, %v", ok, err)
	} else {
		r()
	}
	release()
	r, ok, err := b.TryLock(ctx, "sync-hub")
	if !ok || err != nil {
		t.Fatalf("after release: %v, %v", ok, err)
	}
	r()
}
