package auth

import (
	"errors"
	"net/http/httptest"
	"testing"
)

func TestRulesAdministers(t *testing.T) {
	t.Parallel()
	rs := testRules(t)
	for _, tc := range []struct {
		id   Identity
		want bool
	}{
		{Identity{Name: "admin", Method: MethodBasic}, true},
		{Identity{Name: "reader", Method: MethodBasic}, false},
		{Identity{Name: "pusher", Method: MethodBasic}, false},
		{Identity{}, false},
	} {
		if got := rs.Administers(tc.id); got != tc.want {
			t.Errorf("Administers(%q) = %v, want %v", tc.id.Name, got, tc.want)
		}
	}
	// A refusal for the user before the rule that gives everything takes
	// administration away; one for somebody else does not.
	for _, tc := range []struct {
		deny []string
		want bool
	}{{[]string{"admin"}, false}, {[]string{"reader"}, true}} {
		rs, err := NewRules([]Rule{
			{Repositories: []string{"secret/**"}, Users: tc.deny, Actions: []string{"*"}, Deny: true},
			{Repositories: []string{"**"}, Users: []string{"admin"}, Actions: []string{"pull", "push", "delete"}, Catalog: true},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.Administers(Identity{Name: "admin", Method: MethodBasic}); got != tc.want {
			t.Errorf("with a deny rule for %v first: Administers(admin) = %v, want %v", tc.deny, got, tc.want)
		}
	}
}

func TestGateLoginForPages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, ModeBasic, func(o *GateOptions) { o.Limiter = NewLimiter(2, 1) })
	r := httptest.NewRequest("POST", "/ui/login", nil)
	r.RemoteAddr = "127.0.0.1:40000" // where the test's API requests come from
	id, err := e.gate.Login(r, "reader", "reader-secret")
	if err != nil || id.Name != "reader" || id.Method != MethodBasic {
		t.Fatalf("Login(reader, right password) = %+v, %v", id, err)
	}
	if !e.gate.Allowed(id, TypeRepository, "any/thing", ActionPull) || e.gate.Allowed(id, TypeRepository, "any/thing", ActionDelete) {
		t.Errorf("reader: pull allowed %v, delete allowed %v; want true, false",
			e.gate.Allowed(id, TypeRepository, "any/thing", ActionPull), e.gate.Allowed(id, TypeRepository, "any/thing", ActionDelete))
	}
	fp, ok := e.gate.Fingerprint("reader")
	if !ok || fp == "" {
		t.Errorf("Fingerprint(reader) = %q, %v", fp, ok)
	}
	// The same limiter as the API's Basic logins: after two failures the
	// pair waits, even with the right password.
	for range 2 {
		if _, err := e.gate.Login(r, "reader", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("Login with a wrong password: %v, want ErrInvalidCredentials", err)
		}
	}
	var re *RetryError
	if _, err := e.gate.Login(r, "reader", "reader-secret"); !errors.As(err, &re) || re.Wait <= 0 {
		t.Fatalf("Login after the limit: %v, want a RetryError", err)
	}
	if got := e.do("GET", "/v2/", nil, "Authorization", basicAuth("reader", "reader-secret")); got.status != 429 {
		t.Errorf("API Basic login from the same address after the page's failures: %d, want 429", got.status)
	}
}
