package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd file format: one "user:bcrypt-hash" per line; blank lines and
// lines starting with '#' are ignored. Only bcrypt hashes ($2a$, $2b$,
// $2y$) are accepted: the older formats are too weak to verify against.

// maxHtpasswdSize bounds the file read.
const maxHtpasswdSize = 16 << 20

// ErrUserExists and ErrUserUnknown are the categories of failed edits.
var (
	ErrUserExists  = errors.New("user already exists")
	ErrUserUnknown = errors.New("no such user")
)

// ParseHtpasswd parses an htpasswd file into user → hash. It reports every
// bad line.
func ParseHtpasswd(data []byte) (map[string]string, error) {
	users := map[string]string{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("line %d: want user:hash", n))
		case ValidUserName(user) != nil:
			errs = append(errs, fmt.Errorf("line %d: %v", n, ValidUserName(user)))
		case !isBcrypt(hash):
			errs = append(errs, fmt.Errorf("line %d: user %q: only bcrypt hashes are supported (htpasswd -B, or berth user add)", n, user))
		case users[user] != "":
			errs = append(errs, fmt.Errorf("line %d: user %q appears twice", n, user))
		default:
			users[user] = hash
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return users, errors.Join(errs...)
}

func isBcrypt(hash string) bool {
	if len(hash) != 60 {
		return false
	}
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")
}

// ValidUserName checks a user name: printable, without ':' or spaces, and
// not one of the rule subjects that stand for groups of callers.
func ValidUserName(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case len(user) > 128:
		return fmt.Errorf("user name longer than 128 bytes")
	case user == SubjectAnonymous || user == SubjectAnyUser:
		return fmt.Errorf("user name %q is reserved", user)
	}
	for _, c := range user {
		if c <= ' ' || c == ':' || c == 0x7f {
			return fmt.Errorf("user name %q: no spaces, control characters or ':'", user)
		}
	}
	return nil
}

// Htpasswd verifies passwords against an htpasswd file. It rereads the
// file whenever it changes, so users added, changed or removed with
// `berth user` take effect at once. A missing file means no users.
type Htpasswd struct {
	path string

	mu    sync.Mutex
	stamp fileStamp
	users map[string]string
	gen   uint64

	// cache remembers recent successful verifications, so that a client
	// sending Basic credentials with every request does not pay for
	// bcrypt every time. Keys are HMACs under a per-process secret.
	secret []byte
	cache  map[string]cacheEntry

	dummy []byte // a hash to spend time on for unknown users (dummyFor)
	now   func() time.Time
	log   *slog.Logger
}

type cacheEntry struct {
	gen     uint64
	expires time.Time
}

const (
	verifyCacheTTL  = 5 * time.Minute
	verifyCacheSize = 1024
)

// NewHtpasswd returns a verifier for the file at path. It loads the file
// now and reports a malformed one; a missing one is not an error (users
// can be added while berth runs). Later problems with the file go to log.
func NewHtpasswd(path string, log *slog.Logger) (*Htpasswd, error) {
	h := &Htpasswd{path: path, cache: map[string]cacheEntry{}, now: time.Now, log: log}
	h.secret = make([]byte, 32)
	if _, err := rand.Read(h.secret); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = nil // the error is returned, not logged
	err := h.refreshLocked()
	h.log = log
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return h, nil
}

// fileStamp identifies a version of a file cheaply.
type fileStamp struct {
	exists bool
	mod    time.Time
	size   int64
	ino    uint64
}

func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{exists: true, mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}, nil
}

// refreshLocked rereads the file if it changed. Bad lines are left out
// (failing closed: nobody logs in through a line that does not parse) and
// reported once per change of the file.
func (h *Htpasswd) refreshLocked() error {
	st, err := statFile(h.path)
	if err != nil {
		return err
	}
	if h.users != nil && st == h.stamp {
		return nil
	}
	h.stamp = st
	users := map[string]string{}
	if st.exists {
		var data []byte
		if data, err = readLimited(h.path, maxHtpasswdSize); err == nil {
			users, err = ParseHtpasswd(data)
		}
	}
	h.users = users
	h.gen++
	clear(h.cache)
	if err != nil && h.log != nil {
		h.log.Warn("htpasswd file has errors; the lines in error are ignored", "file", h.path, "err", err)
	}
	return err
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// lookup returns the hash of user and the generation of the file.
func (h *Htpasswd) lookup(user string) (string, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_ = h.refreshLocked() // reported by the log; a stat error keeps what was loaded
	return h.users[user], h.gen
}

// Verify checks a password. Unknown users cost as much as known ones, and
// hashes are compared by bcrypt in constant time.
func (h *Htpasswd) Verify(user, password string) error {
	hash, gen := h.lookup(user)
	key := h.cacheKey(user, password)
	h.mu.Lock()
	e, ok := h.cache[key]
	h.mu.Unlock()
	if ok && e.gen == gen && h.now().Before(e.expires) && hash != "" {
		return nil
	}
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(h.dummyHash(), []byte(password))
		return fmt.Errorf("%w: user %q unknown", ErrInvalidCredentials, user)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		return fmt.Errorf("%w: wrong password for user %q", ErrInvalidCredentials, user)
	}
	h.mu.Lock()
	if len(h.cache) >= verifyCacheSize {
		now := h.now()
		for k, v := range h.cache {
			if v.gen != h.gen || !now.Before(v.expires) {
				delete(h.cache, k)
			}
		}
		if len(h.cache) >= verifyCacheSize {
			clear(h.cache)
		}
	}
	h.cache[key] = cacheEntry{gen: gen, expires: h.now().Add(verifyCacheTTL)}
	h.mu.Unlock()
	return nil
}

// dummyHash is a hash with the cost of the file's hashes, so that checking
// an unknown user takes as long as checking a known one. It is made on
// first use and again when the cost in use changes.
func (h *Htpasswd) dummyHash() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	cost := bcrypt.DefaultCost
	for _, hash := range h.users {
		if c, err := bcrypt.Cost([]byte(hash)); err == nil {
			cost = c
		}
		break
	}
	if c, err := bcrypt.Cost(h.dummy); err != nil || c != cost {
		h.dummy, _ = bcrypt.GenerateFromPassword(h.secret[:16], cost)
	}
	return h.dummy
}

func (h *Htpasswd) cacheKey(user, password string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return string(m.Sum(nil))
}

// Fingerprint identifies the current password of user without revealing
// it: refresh tokens carry it, so that removing a user or changing the
// password invalidates them. ok is false for an unknown user.
func (h *Htpasswd) Fingerprint(user string) (string, bool) {
	hash, _ := h.lookup(user)
	if hash == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte("berth refresh\x00" + hash))
	return base64.RawURLEncoding.EncodeToString(sum[:12]), true
}

// sameFingerprint compares fingerprints in constant time.
func sameFingerprint(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// HashPassword returns the bcrypt hash of password for an htpasswd file.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	if len(password) > 72 {
		return "", errors.New("password longer than 72 bytes (bcrypt's limit)")
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(b), err
}

// EditHtpasswd changes the file at path: edit receives the users (empty
// when the file does not exist) and changes them in place. The file is
// replaced atomically, keeping its mode (0600 for a new file), so a server
// reading it never sees half of it. Comments are not kept.
func EditHtpasswd(path string, edit func(users map[string]string) error) error {
	users := map[string]string{}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		data, err := readLimited(path, maxHtpasswdSize)
		if err != nil {
			return err
		}
		if users, err = ParseHtpasswd(data); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := edit(users); err != nil {
		return err
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	for _, u := range names {
		fmt.Fprintf(&buf, "%s:%s\n", u, users[u])
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
