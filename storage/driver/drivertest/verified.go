package drivertest

import (
	"bytes"
	"errors"
	"io"

	"github.com/berthhq/berth/storage/driver"
)

// testVerifiedWriter checks driver.VerifiedWriter, for a driver that
// offers it: a write verify refuses, or whose source breaks, changes
// nothing at its path (what was there stays; a new path stays missing),
// and one verify approves replaces the file, past one part too.
func testVerifiedWriter(e *env) {
	vw, ok := e.d.(driver.VerifiedWriter)
	if !ok {
		e.t.Skip("the driver does not offer driver.VerifiedWriter")
	}
	refuse := errors.New("refused")
	old := []byte("the committed content")
	p, fresh := e.p("verified/file"), e.p("verified/new")
	e.put(p, old)
	big := bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16+1) // past one part of most stores
	// Past three parts of 5 MiB (S3's least), so parts follow each other
	// while the next is read.
	bigger := bytes.Repeat([]byte("fedcba9876543210"), 17<<20/16+3)

	for _, content := range [][]byte{[]byte("small"), big, bigger} {
		n, err := vw.WriteVerified(e.ctx, p, bytes.NewReader(content), func() error { return refuse })
		if !errors.Is(err, refuse) || n != int64(len(content)) {
			e.t.Fatalf("WriteVerified refused by verify = %d, %v; want %d, the verify error", n, err, len(content))
		}
		e.wantContent(p, old)
		if _, err := vw.WriteVerified(e.ctx, fresh, bytes.NewReader(content), func() error { return refuse }); !errors.Is(err, refuse) {
			e.t.Fatalf("WriteVerified of a new path refused by verify = %v", err)
		}
		e.wantMissing(fresh)
		broken := errors.New("source broke")
		src := io.MultiReader(bytes.NewReader(content[:len(content)/2]), &failingReader{broken})
		if _, err := vw.WriteVerified(e.ctx, p, src, func() error { return nil }); !errors.Is(err, broken) {
			e.t.Fatalf("WriteVerified of a broken source = %v, want the source's error", err)
		}
		e.wantContent(p, old)
	}
	for _, content := range [][]byte{[]byte("new content"), big, bigger} {
		calls := 0
		n, err := vw.WriteVerified(e.ctx, p, bytes.NewReader(content), func() error { calls++; return nil })
		if err != nil || n != int64(len(content)) || calls != 1 {
			e.t.Fatalf("WriteVerified approved = %d, %v (verify called %d times)", n, err, calls)
		}
		e.wantContent(p, content)
	}
	if _, err := vw.WriteVerified(e.ctx, "relative", bytes.NewReader(nil), func() error { return nil }); !errors.Is(err, driver.ErrInvalidPath) {
		e.t.Errorf("WriteVerified of an invalid path = %v, want ErrInvalidPath", err)
	}
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }
