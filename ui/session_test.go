package ui

import (
	"bytes"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
)

func testSessions(now time.Time) *sessions {
	return &sessions{key: bytes.Repeat([]byte{1}, KeySize), now: func() time.Time { return now }}
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := testSessions(now)
	ss := s.fresh("alice", "fp")
	v := s.encode(ss)
	got := s.decode(v)
	if got == nil || *got != *ss {
		t.Fatalf("decode(encode(%+v)) = %+v", ss, got)
	}
	other := &sessions{key: bytes.Repeat([]byte{2}, KeySize), now: s.now}
	if other.decode(v) != nil {
		t.Error("a cookie signed with another key was accepted")
	}
	later := testSessions(now.Add(sessionTTL))
	if later.decode(v) != nil {
		t.Error("an expired session was accepted")
	}
	// Changing the payload (the user) without the key breaks the MAC.
	p, m, _ := strings.Cut(v, ".")
	forged := s.encode(&session{ID: ss.ID, User: "admin", Expires: ss.Expires})
	fp, _, _ := strings.Cut(forged, ".")
	if s.decode(fp+"."+m) != nil || s.decode(p) != nil || s.decode(v+"x") != nil || s.decode(strings.Repeat("a", maxCookie+1)) != nil {
		t.Error("a forged, cut or oversized cookie was accepted")
	}
	if !s.checkCSRF(ss, s.csrf(ss)) || s.checkCSRF(ss, s.csrf(s.fresh("alice", "fp"))) || s.checkCSRF(nil, "") || s.checkCSRF(ss, "") {
		t.Error("CSRF tokens are not bound to their session")
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/ui/r/team/app?x=1":       "/ui/r/team/app?x=1",
		"":                         Prefix,
		"https://evil.example/ui/": Prefix,
		"//evil.example/ui/":       Prefix,
		"/ui/\\evil":               Prefix,
		"/v2/_catalog":             Prefix,
		"/ui/../v2/_catalog":       Prefix,
		"/ui/\r\nSet-Cookie: x":    Prefix,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSessionDecode: whatever a cookie holds, decode never panics, and
// what it accepts is a session this key signed.
func FuzzSessionDecode(f *testing.F) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := testSessions(now)
	f.Add(s.encode(s.fresh("alice", "fp")))
	f.Add("e30.AAAA")
	f.Add(".")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		ss := s.decode(v)
		if ss == nil {
			return
		}
		if ss.ID == "" || s.now().Unix() >= ss.Expires {
			t.Fatalf("accepted %+v", ss)
		}
		if again := s.decode(s.encode(ss)); again == nil || *again != *ss {
			t.Fatalf("an accepted session does not round-trip: %+v", ss)
		}
	})
}

// FuzzSafeNext: a return address is always a path of the UI.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/ui/", "//x", "/ui/../v2/", "https://x/ui/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeNext(in)
		u, err := url.Parse(got)
		if err != nil || !strings.HasPrefix(got, Prefix) || strings.ContainsAny(got, "\\\r\n") || !strings.HasPrefix(path.Clean(u.Path)+"/", Prefix) {
			t.Fatalf("safeNext(%q) = %q", in, got)
		}
	})
}
