package drivertest

import (
	"context"
	"fmt"
	"testing"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

// recorder is a testing.TB that records failures instead of failing, so
// the suite's own checks can be tested. Only the methods checkGone uses
// are implemented; others panic through the nil embedded TB.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// noDelete is a driver whose Delete claims success without deleting.
type noDelete struct{ *inmemory.Driver }

func (noDelete) Delete(context.Context, string) error { return nil }

// shallowDelete deletes only files, leaving directories behind.
type shallowDelete struct{ *inmemory.Driver }

func (d shallowDelete) Delete(ctx context.Context, p string) error {
	fi, err := d.Stat(ctx, p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return nil
	}
	return d.Driver.Delete(ctx, p)
}

func TestCheckGoneCatchesLeftovers(t *testing.T) {
	ctx := context.Background()
	for _, d := range []driver.Driver{noDelete{inmemory.New()}, shallowDelete{inmemory.New()}} {
		if err := d.PutContent(ctx, "/suite/test/a/b", []byte("x")); err != nil {
			t.Fatal(err)
		}
		var r recorder
		checkGone(&r, d, "/suite/test", true)
		if len(r.errors) == 0 {
			t.Errorf("%T: checkGone found nothing although the prefix was not deleted", d)
		}
	}
}

func TestCheckGonePassesCleanDriver(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	if err := d.PutContent(ctx, "/suite/test/a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var r recorder
	checkGone(&r, d, "/suite/test", true)
	if len(r.errors) != 0 {
		t.Errorf("checkGone on a correct driver failed: %q", r.errors)
	}
	// Without deleting, the same state must be reported.
	if err := d.PutContent(ctx, "/suite/test/a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	checkGone(&r, d, "/suite/test", false)
	if len(r.errors) == 0 {
		t.Error("checkGone without delete did not report existing files")
	}
}

// TestSuiteSelfConsistent checks the suite's fixed path tables against the
// path rules, so a typo in a table cannot silently weaken a test.
func TestSuiteSelfConsistent(t *testing.T) {
	for _, p := range badPaths("/prefix") {
		if driver.ValidPath(p) {
			t.Errorf("bad path %q is valid", p)
		}
	}
	for _, n := range validUnusualNames {
		if !driver.ValidPath("/prefix/" + n) {
			t.Errorf("unusual name %q is invalid", n)
		}
	}
}
