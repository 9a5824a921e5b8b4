package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func hashFor(t *testing.T, pw string) string {
	t.Helper()
	// The minimum cost keeps the tests fast; the format is the same.
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHtpasswdVerifyAndReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	h, err := NewHtpasswd(path, nil)
	if err != nil {
		t.Fatalf("a missing file is no users, not an error: %v", err)
	}
	if hash, _ := h.lookup("admin"); hash != "" {
		t.Fatal("a user without a file")
	}
	if err := EditHtpasswd(path, func(u map[string]string) error { u["admin"] = hashFor(t, "pw"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := h.Verify("admin", "pw"); err != nil {
		t.Fatalf("a user added while running: %v", err)
	}
	for _, c := range [][2]string{{"admin", "wrong"}, {"admin", ""}, {"Admin", "pw"}, {"nobody", "pw"}, {"admin", "pw "}} {
		if err := h.Verify(c[0], c[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Verify(%q, %q) = %v", c[0], c[1], err)
		}
	}
	fp1, ok := h.Fingerprint("admin")
	if !ok {
		t.Fatal("no fingerprint")
	}
	// A changed password: the old one fails at once, even though it was
	// just verified (and cached), and the fingerprint changes.
	if err := EditHtpasswd(path, func(u map[string]string) error { u["admin"] = hashFor(t, "new"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := h.Verify("admin", "pw"); err == nil {
		t.Error("the old password still works")
	}
	if err := h.Verify("admin", "new"); err != nil {
		t.Error(err)
	}
	if fp2, _ := h.Fingerprint("admin"); sameFingerprint(fp1, fp2) {
		t.Error("fingerprint unchanged by a new password")
	}
	// Removal.
	if err := EditHtpasswd(path, func(u map[string]string) error { delete(u, "admin"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := h.Verify("admin", "new"); err == nil {
		t.Error("a removed user still logs in")
	}
	if _, ok := h.Fingerprint("admin"); ok {
		t.Error("a removed user still has a fingerprint")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, %v", fi.Mode(), err)
	}
}

func TestHtpasswdVerifyCacheExpires(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(path, []byte("u:"+hashFor(t, "pw")+"\n"), 0o600)
	h, err := NewHtpasswd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	h.now = c.now
	if err := h.Verify("u", "pw"); err != nil {
		t.Fatal(err)
	}
	if len(h.cache) != 1 {
		t.Fatalf("cache has %d entries", len(h.cache))
	}
	for k := range h.cache {
		if strings.Contains(k, "pw") {
			t.Fatal("the cache key holds the password")
		}
	}
	c.advance(verifyCacheTTL + time.Second)
	if err := h.Verify("u", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := h.Verify("u", "other"); err == nil {
		t.Fatal("wrong password accepted")
	}
}

func TestParseHtpasswd(t *testing.T) {
	t.Parallel()
	good := hashFor(t, "x")
	users, err := ParseHtpasswd([]byte("# comment\n\nalice:" + good + "\r\n  bob:" + good + "  \n"))
	if err != nil || len(users) != 2 || users["alice"] != good || users["bob"] != good {
		t.Fatalf("%v %v", users, err)
	}
	for _, bad := range []string{
		"alice",
		"alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
		"alice:$apr1$abc$def",
		"alice:plaintext",
		":" + good,
		"anonymous:" + good,
		"a b:" + good,
		"alice:" + good + "\nalice:" + good,
	} {
		if _, err := ParseHtpasswd([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	// Bad lines are left out, good ones kept (failing closed per line).
	users, err = ParseHtpasswd([]byte("alice:plain\nbob:" + good + "\n"))
	if err == nil || users["alice"] != "" || users["bob"] != good {
		t.Errorf("mixed file: %v, %v", users, err)
	}
}

func FuzzParseHtpasswd(f *testing.F) {
	f.Add("alice:$2y$05$abcdefghijklmnopqrstuuE8bBwPZhHWSaFdRPTe6Fvu1QUAw8p2a\n# c\n")
	f.Add("a:b:c\n\n:x")
	f.Fuzz(func(t *testing.T, data string) {
		users, _ := ParseHtpasswd([]byte(data))
		for u, h := range users {
			if ValidUserName(u) != nil || !isBcrypt(h) {
				t.Fatalf("accepted %q:%q", u, h)
			}
		}
	})
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("a password bcrypt would truncate was hashed")
	}
}
