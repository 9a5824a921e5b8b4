package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SessionCookie is the name of the UI's session cookie.
const SessionCookie = "berth_ui"

// sessionTTL is how long a session lasts, signed in or not.
const sessionTTL = 12 * time.Hour

// maxCookie bounds the session cookie berth reads.
const maxCookie = 1024

// KeySize is the size of a session key.
const KeySize = 32

// session is what the cookie holds. Every visitor has one, so that the
// sign-in form itself carries a CSRF token.
type session struct {
	ID   string `json:"sid"`
	User string `json:"u,omitempty"`
	// Fingerprint is the user's password fingerprint at sign-in: a
	// changed password or a removed user ends the session.
	Fingerprint string `json:"fp,omitempty"`
	Expires     int64  `json:"exp"`
}

// LoadOrCreateKey reads the session key in path, or writes a new random
// one there (mode 0600) when the file does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) < KeySize {
			return nil, fmt.Errorf("session key %s: %d bytes, want at least %d", path, len(b), KeySize)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("session key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process wrote it first: use theirs.
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("session key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("session key: %w", err)
	}
	return key, f.Close()
}

// sessions signs and checks session cookies and CSRF tokens.
type sessions struct {
	key []byte
	now func() time.Time
}

func (s *sessions) mac(label string, data []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

// encode returns the cookie value of ss: the payload and its MAC.
func (s *sessions) encode(ss *session) string {
	payload, _ := json.Marshal(ss)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac("session", payload))
}

// decode checks a cookie value and returns its session, or nil when it is
// malformed, forged or expired.
func (s *sessions) decode(v string) *session {
	if len(v) > maxCookie {
		return nil
	}
	p, m, ok := strings.Cut(v, ".")
	if !ok {
		return nil
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	sum, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(sum, s.mac("session", payload)) {
		return nil
	}
	var ss session
	if err := json.Unmarshal(payload, &ss); err != nil || ss.ID == "" {
		return nil
	}
	if s.now().Unix() >= ss.Expires {
		return nil
	}
	return &ss
}

// fresh returns a new session for user (anonymous when "").
func (s *sessions) fresh(user, fingerprint string) *session {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return &session{ID: base64.RawURLEncoding.EncodeToString(id[:]), User: user, Fingerprint: fingerprint,
		Expires: s.now().Add(sessionTTL).Unix()}
}

// csrf is the CSRF token of a session: forms carry it, and a POST is
// accepted only with the token of the session its cookie holds.
func (s *sessions) csrf(ss *session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", []byte(ss.ID)))
}

// checkCSRF compares a form's token with the session's in constant time.
func (s *sessions) checkCSRF(ss *session, token string) bool {
	return ss != nil && hmac.Equal([]byte(token), []byte(s.csrf(ss)))
}

// set writes the cookie of ss.
func (s *sessions) set(w http.ResponseWriter, r *http.Request, ss *session) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: s.encode(ss), Path: Prefix,
		Expires: time.Unix(ss.Expires, 0), MaxAge: int(time.Unix(ss.Expires, 0).Sub(s.now()).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}
