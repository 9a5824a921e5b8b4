package storage

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/filesystem"
	"github.com/berthhq/berth/storage/driver/inmemory"
)

func newMemStore() *Store { return New(inmemory.New()) }

func newFSStore(t *testing.T) *Store {
	t.Helper()
	d, err := filesystem.New(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	return New(d)
}

// forEachDriver runs fn as a parallel subtest over a store on each driver.
func forEachDriver(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("inmemory", func(t *testing.T) {
		t.Parallel()
		fn(t, newMemStore())
	})
	t.Run("filesystem", func(t *testing.T) {
		t.Parallel()
		fn(t, newFSStore(t))
	})
}

func sha512Of(b []byte) digest.Digest {
	sum := sha512.Sum512(b)
	return digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
}

// readBlob reads blob d through Open and checks its size.
func readBlob(t *testing.T, s *Store, d digest.Digest) []byte {
	t.Helper()
	f, size, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("open %s: size %d, read %d bytes", d, size, len(b))
	}
	return b
}

// wantBlob checks that d is stored with content want.
func wantBlob(t *testing.T, s *Store, d digest.Digest, want []byte) {
	t.Helper()
	size, err := s.Stat(t.Context(), d)
	if err != nil {
		t.Fatalf("stat %s: %v", d, err)
	}
	if size != int64(len(want)) {
		t.Fatalf("stat %s: size %d, want %d", d, size, len(want))
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, want) {
		t.Fatalf("blob %s differs: %q, want %q", d, got, want)
	}
}

// wantNoBlob checks that d is not stored.
func wantNoBlob(t *testing.T, s *Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("stat %s: %v, want ErrBlobUnknown", d, err)
	}
	if _, _, err := s.Open(t.Context(), d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("open %s: %v, want ErrBlobUnknown", d, err)
	}
}

// wantNoUploads checks that no session is left in the driver.
func wantNoUploads(t *testing.T, s *Store) {
	t.Helper()
	ids, err := s.Driver().List(t.Context(), "/uploads")
	if err != nil && !errors.Is(err, driver.ErrNotFound) {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Fatalf("sessions left behind: %v", ids)
	}
}

func wantSize(t *testing.T, s *Store, repo, id string, size int64) {
	t.Helper()
	u, err := s.Status(t.Context(), repo, id)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if u.Size != size || u.ID != id || u.Repo != repo {
		t.Fatalf("status = %+v, want size %d", u, size)
	}
}

func TestUploadLifecycle(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		before := time.Now().Add(-time.Second)
		u, err := s.StartUpload(ctx, "lib/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := uuid.Parse(u.ID); err != nil || len(u.ID) != 36 {
			t.Errorf("id %q is not a uuid", u.ID)
		}
		if u.Repo != "lib/app" || u.Size != 0 || u.StartedAt.Before(before) || u.StartedAt.After(time.Now()) {
			t.Errorf("started %+v", u)
		}
		wantSize(t, s, "lib/app", u.ID, 0)
		st, _ := s.Status(ctx, "lib/app", u.ID)
		if !st.StartedAt.Equal(u.StartedAt) {
			t.Errorf("status StartedAt %v, want %v", st.StartedAt, u.StartedAt)
		}

		n, err := s.Append(ctx, "lib/app", u.ID, 0, strings.NewReader("hello"))
		if err != nil || n != 5 {
			t.Fatalf("append: %d %v", n, err)
		}
		n, err = s.Append(ctx, "lib/app", u.ID, -1, strings.NewReader(" world"))
		if err != nil || n != 11 {
			t.Fatalf("streamed append: %d %v", n, err)
		}
		// A chunk at the wrong offset.
		for _, start := range []int64{0, 3, 10, 12, 1000} {
			_, err = s.Append(ctx, "lib/app", u.ID, start, strings.NewReader("zzz"))
			var re *RangeError
			if !errors.As(err, &re) || re.Size != 11 {
				t.Fatalf("append at %d: %v, want RangeError{11}", start, err)
			}
			if !strings.Contains(re.Error(), "11") {
				t.Errorf("RangeError text %q does not name the offset", re.Error())
			}
		}
		_, err = s.Finish(ctx, "lib/app", u.ID, 4, strings.NewReader("!"), digest.FromString("hello world!"))
		var re *RangeError
		if !errors.As(err, &re) || re.Size != 11 {
			t.Fatalf("finish at a wrong offset: %v", err)
		}
		wantSize(t, s, "lib/app", u.ID, 11)

		// An empty append changes nothing.
		if n, err := s.Append(ctx, "lib/app", u.ID, 11, strings.NewReader("")); err != nil || n != 11 {
			t.Fatalf("empty append: %d %v", n, err)
		}

		d := digest.FromString("hello world!")
		n, err = s.Finish(ctx, "lib/app", u.ID, 11, strings.NewReader("!"), d)
		if err != nil || n != 12 {
			t.Fatalf("finish: %d %v", n, err)
		}
		wantBlob(t, s, d, []byte("hello world!"))
		if _, err := s.Status(ctx, "lib/app", u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("status after finish: %v", err)
		}
		if _, err := s.Append(ctx, "lib/app", u.ID, -1, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("append after finish: %v", err)
		}
		wantNoUploads(t, s)
	})
}

func TestFinishWithoutBody(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, _ := s.StartUpload(ctx, "r")
		if _, err := s.Append(ctx, "r", u.ID, -1, strings.NewReader("all of it")); err != nil {
			t.Fatal(err)
		}
		d := digest.FromString("all of it")
		if n, err := s.Finish(ctx, "r", u.ID, -1, nil, d); err != nil || n != 9 {
			t.Fatalf("finish: %d %v", n, err)
		}
		wantBlob(t, s, d, []byte("all of it"))

		// An empty blob.
		u, _ = s.StartUpload(ctx, "r")
		empty := digest.FromBytes(nil)
		if n, err := s.Finish(ctx, "r", u.ID, 0, nil, empty); err != nil || n != 0 {
			t.Fatalf("finish empty: %d %v", n, err)
		}
		wantBlob(t, s, empty, []byte{})
		wantNoUploads(t, s)
	})
}

func TestUploadOfAnotherRepository(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	ctx := t.Context()
	u, _ := s.StartUpload(ctx, "owner")
	if _, err := s.Append(ctx, "owner", u.ID, -1, strings.NewReader("mine")); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("mine")
	for _, repo := range []string{"thief", "owner/sub", "", "Owner"} {
		if _, err := s.Status(ctx, repo, u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: status: %v", repo, err)
		}
		if _, err := s.Append(ctx, repo, u.ID, -1, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: append: %v", repo, err)
		}
		if _, err := s.Finish(ctx, repo, u.ID, -1, nil, d); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: finish: %v", repo, err)
		}
		if err := s.Cancel(ctx, repo, u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: cancel: %v", repo, err)
		}
	}
	wantSize(t, s, "owner", u.ID, 4)
	wantNoBlob(t, s, d)
}

func TestInvalidUploadIDs(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	ctx := t.Context()
	u, _ := s.StartUpload(ctx, "r")
	for _, id := range []string{"", "x", "..", "../blobs", "/uploads", strings.ToUpper(u.ID), u.ID + "/data",
		"urn:uuid:" + u.ID, "{" + u.ID + "}", strings.ReplaceAll(u.ID, "-", ""), uuid.NewString()} {
		if _, err := s.Status(ctx, "r", id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: status: %v", id, err)
		}
		if _, err := s.Append(ctx, "r", id, -1, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: append: %v", id, err)
		}
		if _, err := s.Finish(ctx, "r", id, -1, nil, digest.FromString("")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: finish: %v", id, err)
		}
		if err := s.Cancel(ctx, "r", id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("%q: cancel: %v", id, err)
		}
	}
	wantSize(t, s, "r", u.ID, 0)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, _ := s.StartUpload(ctx, "r")
		keep, _ := s.StartUpload(ctx, "r")
		if _, err := s.Append(ctx, "r", u.ID, -1, strings.NewReader("doomed")); err != nil {
			t.Fatal(err)
		}
		if err := s.Cancel(ctx, "r", u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Status(ctx, "r", u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("status after cancel: %v", err)
		}
		if err := s.Cancel(ctx, "r", u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("second cancel: %v", err)
		}
		if _, err := s.Finish(ctx, "r", u.ID, -1, nil, digest.FromString("doomed")); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("finish after cancel: %v", err)
		}
		wantNoBlob(t, s, digest.FromString("doomed"))
		wantSize(t, s, "r", keep.ID, 0)
	})
}

func TestPut(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		data := bytes.Repeat([]byte("monolithic "), 10000)
		d := digest.FromBytes(data)
		n, err := s.Put(ctx, "r", d, bytes.NewReader(data))
		if err != nil || n != int64(len(data)) {
			t.Fatalf("put: %d %v", n, err)
		}
		wantBlob(t, s, d, data)
		// Again: the content is the same, nothing changes.
		if n, err := s.Put(ctx, "other", d, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Fatalf("second put: %d %v", n, err)
		}
		wantBlob(t, s, d, data)

		d512 := sha512Of(data)
		if n, err := s.Put(ctx, "r", d512, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Fatalf("put sha512: %d %v", n, err)
		}
		wantBlob(t, s, d512, data)
		wantNoUploads(t, s)
	})
}

func TestDigestMismatchLeavesNoBlob(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		data := []byte("actual content")
		for _, claimed := range []digest.Digest{digest.FromString("claimed"), sha512Of([]byte("claimed"))} {
			_, err := s.Put(ctx, "r", claimed, bytes.NewReader(data))
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("put %s: %v, want ErrDigestMismatch", claimed.Algorithm(), err)
			}
			wantNoBlob(t, s, claimed)

			u, _ := s.StartUpload(ctx, "r")
			if _, err := s.Append(ctx, "r", u.ID, 0, bytes.NewReader(data[:6])); err != nil {
				t.Fatal(err)
			}
			_, err = s.Finish(ctx, "r", u.ID, 6, bytes.NewReader(data[6:]), claimed)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("finish %s: %v, want ErrDigestMismatch", claimed.Algorithm(), err)
			}
			if !strings.Contains(err.Error(), claimed.String()) {
				t.Errorf("mismatch error %q does not name the expected digest", err)
			}
			wantNoBlob(t, s, claimed)
			if _, err := s.Status(ctx, "r", u.ID); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("session after mismatch: %v", err)
			}
		}
		wantNoBlob(t, s, digest.FromBytes(data))
		wantNoBlob(t, s, sha512Of(data))
		wantNoUploads(t, s)

		// A mismatch against a digest that is already stored leaves the
		// stored blob as it was.
		good := []byte("good")
		gd := digest.FromBytes(good)
		if _, err := s.Put(ctx, "r", gd, bytes.NewReader(good)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "r", gd, strings.NewReader("evil")); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("put over existing: %v", err)
		}
		wantBlob(t, s, gd, good)
	})
}

func TestUnsupportedDigests(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	ctx := t.Context()
	u, _ := s.StartUpload(ctx, "r")
	for _, d := range []digest.Digest{
		"sha384:" + digest.Digest(strings.Repeat("a", 96)),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha256:xyz", "", "sha256:" + digest.Digest(strings.ToUpper(digest.FromString("x").Encoded())),
	} {
		if _, err := s.Put(ctx, "r", d, strings.NewReader("x")); err == nil {
			t.Errorf("put %q: no error", d)
		}
		if _, err := s.Finish(ctx, "r", u.ID, -1, strings.NewReader("x"), d); err == nil {
			t.Errorf("finish %q: no error", d)
		}
		if _, err := s.Stat(ctx, d); err == nil || errors.Is(err, ErrBlobUnknown) {
			t.Errorf("stat %q: %v, want a validation error", d, err)
		}
		if _, _, err := s.Open(ctx, d); err == nil || errors.Is(err, ErrBlobUnknown) {
			t.Errorf("open %q: %v, want a validation error", d, err)
		}
		if err := s.Delete(ctx, d); err == nil || errors.Is(err, ErrBlobUnknown) {
			t.Errorf("delete %q: %v, want a validation error", d, err)
		}
	}
	if err := ValidateDigest("sha384:" + digest.Digest(strings.Repeat("a", 96))); !errors.Is(err, ErrUnsupportedDigest) {
		t.Errorf("sha384: %v, want ErrUnsupportedDigest", err)
	}
	// The session was not touched by the rejected calls.
	wantSize(t, s, "r", u.ID, 0)
	if ids, _ := s.Driver().List(ctx, "/uploads"); len(ids) != 1 {
		t.Errorf("sessions: %v, want only %s", ids, u.ID)
	}
}

func TestSHA512Finish(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		data := bytes.Repeat([]byte("0123456789abcdef"), 70000) // more than one copy buffer
		d := sha512Of(data)
		u, _ := s.StartUpload(ctx, "r")
		for off := 0; off < len(data)-300000; off += 300000 {
			if _, err := s.Append(ctx, "r", u.ID, int64(off), bytes.NewReader(data[off:off+300000])); err != nil {
				t.Fatal(err)
			}
		}
		last := len(data) / 300000 * 300000
		if last == len(data) {
			last -= 300000
		}
		n, err := s.Finish(ctx, "r", u.ID, int64(last), bytes.NewReader(data[last:]), d)
		if err != nil || n != int64(len(data)) {
			t.Fatalf("finish: %d %v", n, err)
		}
		wantBlob(t, s, d, data)
		wantNoBlob(t, s, digest.FromBytes(data))
	})
}

// TestResumeRehashes: when the saved hash state does not cover the data
// (a crash between writing bytes and saving state, or a damaged state),
// the session hashes the data it really has.
func TestResumeRehashes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, s *Store, id string)
	}{
		{"bytes appended behind the state", func(t *testing.T, s *Store, id string) {
			w, err := s.Driver().Writer(t.Context(), uploadData(id), true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("+crash")); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage hash state", func(t *testing.T, s *Store, id string) {
			info, err := s.readInfo(t.Context(), "r", id)
			if err != nil {
				t.Fatal(err)
			}
			info.HashState = []byte("not a hash state")
			if err := s.writeInfo(t.Context(), id, info); err != nil {
				t.Fatal(err)
			}
		}},
		{"data shorter than the state", func(t *testing.T, s *Store, id string) {
			b, err := s.Driver().GetContent(t.Context(), uploadData(id))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Driver().PutContent(t.Context(), uploadData(id), b[:len(b)-2]); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachDriver(t, func(t *testing.T, s *Store) {
				ctx := t.Context()
				u, _ := s.StartUpload(ctx, "r")
				if _, err := s.Append(ctx, "r", u.ID, -1, strings.NewReader("before")); err != nil {
					t.Fatal(err)
				}
				// Damage, then append: Append must hash what is there.
				tc.damage(t, s, u.ID)
				cur, err := s.Driver().GetContent(ctx, uploadData(u.ID))
				if err != nil {
					t.Fatal(err)
				}
				wantSize(t, s, "r", u.ID, int64(len(cur)))
				if _, err := s.Append(ctx, "r", u.ID, int64(len(cur)), strings.NewReader("-after")); err != nil {
					t.Fatal(err)
				}
				// Damage again, then finish: Finish must too.
				tc.damage(t, s, u.ID)
				all, err := s.Driver().GetContent(ctx, uploadData(u.ID))
				if err != nil {
					t.Fatal(err)
				}
				d := digest.FromBytes(all)
				n, err := s.Finish(ctx, "r", u.ID, -1, nil, d)
				if err != nil || n != int64(len(all)) {
					t.Fatalf("finish of %q: %d %v", all, n, err)
				}
				wantBlob(t, s, d, all)
			})
		})
	}
}

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		const workers, chunk = 16, 4096
		u, _ := s.StartUpload(ctx, "r")
		var wg sync.WaitGroup
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := bytes.Repeat([]byte{byte('a' + i)}, chunk)
				if _, err := s.Append(ctx, "r", u.ID, -1, bytes.NewReader(b)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		data, err := s.Driver().GetContent(ctx, uploadData(u.ID))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != workers*chunk {
			t.Fatalf("%d bytes, want %d", len(data), workers*chunk)
		}
		seen := map[byte]bool{}
		for off := 0; off < len(data); off += chunk {
			c := data[off]
			if !bytes.Equal(data[off:off+chunk], bytes.Repeat([]byte{c}, chunk)) || seen[c] {
				t.Fatalf("chunks interleaved at offset %d", off)
			}
			seen[c] = true
		}
		d := digest.FromBytes(data)
		if _, err := s.Finish(ctx, "r", u.ID, -1, nil, d); err != nil {
			t.Fatal(err)
		}
		wantBlob(t, s, d, data)
	})
}

func TestConcurrentFinishOfSameContent(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		data := bytes.Repeat([]byte("same"), 50000)
		d := digest.FromBytes(data)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if n, err := s.Put(ctx, "r", d, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
					t.Errorf("put: %d %v", n, err)
				}
			}()
		}
		wg.Wait()
		wantBlob(t, s, d, data)
		wantNoUploads(t, s)
	})
}

func TestPurgeUploads(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if n, err := s.PurgeUploads(ctx, time.Now()); err != nil || n != 0 {
			t.Fatalf("purge of nothing: %d %v", n, err)
		}
		old1, _ := s.StartUpload(ctx, "r")
		old2, _ := s.StartUpload(ctx, "other")
		if _, err := s.Append(ctx, "r", old1.ID, -1, strings.NewReader("old data")); err != nil {
			t.Fatal(err)
		}
		cutoff := time.Now()
		for !time.Now().After(cutoff) {
			// Wait out the clock's resolution, so later sessions are
			// strictly newer than the cutoff.
		}
		fresh, _ := s.StartUpload(ctx, "r")
		if !fresh.StartedAt.After(cutoff) {
			t.Fatalf("fresh session started %v, not after %v", fresh.StartedAt, cutoff)
		}

		n, err := s.PurgeUploads(ctx, cutoff)
		if err != nil || n != 2 {
			t.Fatalf("purge: %d %v, want 2", n, err)
		}
		for _, u := range []*Upload{old1, old2} {
			if _, err := s.Status(ctx, u.Repo, u.ID); !errors.Is(err, ErrUploadUnknown) {
				t.Errorf("old session %s: %v", u.ID, err)
			}
		}
		wantSize(t, s, "r", fresh.ID, 0)
		if n, err := s.PurgeUploads(ctx, cutoff); err != nil || n != 0 {
			t.Errorf("second purge: %d %v", n, err)
		}

		// Blobs are never purged.
		d := digest.FromString("kept")
		if _, err := s.Put(ctx, "r", d, strings.NewReader("kept")); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PurgeUploads(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Errorf("purge all: %d %v, want 1", n, err)
		}
		wantBlob(t, s, d, []byte("kept"))
		wantNoUploads(t, s)
	})
}

func TestOpenSeek(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		data := make([]byte, 3<<20)
		for i := range data {
			data[i] = byte(i * 7)
		}
		d := digest.FromBytes(data)
		if _, err := s.Put(ctx, "r", d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		f, size, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if size != int64(len(data)) {
			t.Fatalf("size %d", size)
		}
		read := func(n int) []byte {
			t.Helper()
			b := make([]byte, n)
			got, err := io.ReadFull(f, b)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return b[:got]
		}
		seek := func(off int64, whence int, want int64) {
			t.Helper()
			pos, err := f.Seek(off, whence)
			if err != nil || pos != want {
				t.Fatalf("seek(%d, %d) = %d %v, want %d", off, whence, pos, err, want)
			}
		}
		if got := read(10); !bytes.Equal(got, data[:10]) {
			t.Fatal("first bytes differ")
		}
		seek(0, io.SeekCurrent, 10)
		seek(1<<20, io.SeekStart, 1<<20)
		if got := read(100); !bytes.Equal(got, data[1<<20:1<<20+100]) {
			t.Fatal("bytes after SeekStart differ")
		}
		seek(-50, io.SeekCurrent, 1<<20+50)
		if got := read(10); !bytes.Equal(got, data[1<<20+50:1<<20+60]) {
			t.Fatal("bytes after a backward SeekCurrent differ")
		}
		seek(-5, io.SeekEnd, size-5)
		if got := read(100); !bytes.Equal(got, data[len(data)-5:]) {
			t.Fatalf("tail = %d bytes, want the last 5", len(got))
		}
		if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("read at end: %d %v", n, err)
		}
		// Seeking back after EOF works, as http.ServeContent does.
		seek(0, io.SeekEnd, size)
		seek(0, io.SeekStart, 0)
		if got := read(len(data)); !bytes.Equal(got, data) {
			t.Fatal("full re-read differs")
		}
		seek(size+10, io.SeekStart, size+10)
		if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("read past end: %d %v", n, err)
		}
		if _, err := f.Seek(-1, io.SeekStart); err == nil {
			t.Error("seek to a negative offset: no error")
		}
		if _, err := f.Seek(0, 42); err == nil {
			t.Error("seek with a bad whence: no error")
		}
	})
}

func TestOpenWithoutOpener(t *testing.T) {
	t.Parallel()
	// The inmemory driver has no Opener, so Open uses the generic seeker;
	// check that, so a driver change does not silently skip it.
	if _, ok := driver.Driver(inmemory.New()).(driver.Opener); ok {
		t.Fatal("inmemory implements Opener: the generic seeker needs another driver without one to be tested")
	}
	s := newMemStore()
	d := digest.FromString("x")
	if _, err := s.Put(t.Context(), "r", d, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	f, _, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*seekReader); !ok {
		t.Errorf("Open over inmemory returned %T, want *seekReader", f)
	}
}

func TestDeleteBlob(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := digest.FromString("gone")
		if err := s.Delete(ctx, d); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("delete of unknown: %v", err)
		}
		if _, err := s.Put(ctx, "r", d, strings.NewReader("gone")); err != nil {
			t.Fatal(err)
		}
		keep := digest.FromString("kept")
		if _, err := s.Put(ctx, "r", keep, strings.NewReader("kept")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		wantNoBlob(t, s, d)
		wantBlob(t, s, keep, []byte("kept"))
		if err := s.Delete(ctx, d); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("second delete: %v", err)
		}
	})
}

func TestRedirectURLWithoutRedirector(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	u, err := s.RedirectURL(nil, digest.FromString("x"))
	if err != nil || u != "" {
		t.Errorf("redirect = %q %v, want none", u, err)
	}
}

func TestValidateDigest(t *testing.T) {
	t.Parallel()
	for _, d := range []digest.Digest{
		digest.FromString("x"), sha512Of([]byte("x")),
		"sha256:" + digest.Digest(strings.Repeat("0", 64)),
	} {
		if err := ValidateDigest(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	for _, d := range []digest.Digest{
		"", "sha256", "sha256:", ":abc", "sha256:xyz",
		"sha256:" + digest.Digest(strings.Repeat("a", 63)),
		"sha256:" + digest.Digest(strings.Repeat("a", 65)),
		"sha256:" + digest.Digest(strings.Repeat("A", 64)),
		"sha512:" + digest.Digest(strings.Repeat("a", 64)),
		"sha384:" + digest.Digest(strings.Repeat("a", 96)),
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"SHA256:" + digest.Digest(strings.Repeat("a", 64)),
		"sha256:" + digest.Digest(strings.Repeat("a", 62)) + "/.",
		"sha256:../" + digest.Digest(strings.Repeat("a", 61)),
	} {
		if err := ValidateDigest(d); err == nil {
			t.Errorf("%q accepted", d)
		}
	}
}

func FuzzValidateDigest(f *testing.F) {
	for _, s := range []string{
		digest.FromString("x").String(), sha512Of([]byte("x")).String(), "sha256:xyz", "", ":", "sha256:",
		"sha384:" + strings.Repeat("a", 96), "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:../../etc/passwd",
		"sha256+b64:abc", "sha256:" + strings.Repeat("A", 64), "sha512:" + strings.Repeat("f", 128) + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := digest.Digest(s)
		if err := ValidateDigest(d); err != nil {
			return
		}
		want := map[digest.Algorithm]int{digest.SHA256: 64, digest.SHA512: 128}[d.Algorithm()]
		if want == 0 {
			t.Fatalf("%q accepted with algorithm %q", s, d.Algorithm())
		}
		enc := d.Encoded()
		if len(enc) != want || strings.Trim(enc, "0123456789abcdef") != "" {
			t.Fatalf("%q accepted with encoded part %q", s, enc)
		}
		if s != string(d.Algorithm())+":"+enc {
			t.Fatalf("%q is not in canonical form", s)
		}
		if p := blobPath(d); !driver.ValidPath(p) || !strings.HasPrefix(p, "/blobs/") {
			t.Fatalf("%q maps to path %q", s, p)
		}
	})
}

// Guard against a context that is cancelled: no call may hang or panic.
func TestCancelledContext(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	u, _ := s.StartUpload(t.Context(), "r")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, "r", u.ID, -1, strings.NewReader("x")); err == nil {
		t.Error("append with a cancelled context: no error")
	}
	if _, err := s.StartUpload(ctx, "r"); err == nil {
		t.Error("start with a cancelled context: no error")
	}
	wantSize(t, s, "r", u.ID, 0)
}
