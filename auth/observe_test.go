package auth

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/audit"
	"github.com/berthhq/berth/internal/testenv"
)

// auditLines decodes the audit lines of log into "action outcome user
// method repository reason".
func auditLines(t *testing.T, log *testenv.Buffer) []string {
	t.Helper()
	var got []string
	dec := json.NewDecoder(strings.NewReader(log.String()))
	for dec.More() {
		var e struct {
			Msg, Action, Outcome, User, Method, Repository, Reason, Request string
			Audit                                                           bool
		}
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		if e.Msg != "audit" || !e.Audit || e.Request == "" {
			t.Errorf("audit line %+v: want msg audit, audit=true and the request id", e)
		}
		got = append(got, strings.Join([]string{e.Action, e.Outcome, e.User, e.Method, e.Repository, e.Reason}, " "))
	}
	return got
}

// TestAuditAuthentication checks the audit lines of the gate's decisions:
// logins that succeed, fail and are refused by the limiter, tokens issued,
// and requests an authenticated caller may not make. Nothing secret is in
// them.
func TestAuditAuthentication(t *testing.T) {
	t.Parallel()
	var buf testenv.Buffer
	e := newTestEnv(t, ModeToken, func(o *GateOptions) {
		o.Audit = audit.New(slog.New(slog.NewJSONHandler(&buf, nil)))
		o.Limiter = NewLimiter(1, 0.001) // one failure, then refused
	})
	tokenResponse(t, e.do("GET", "/token?service=berth&scope=repository:ci/app:pull", nil, "Authorization", basicAuth("pusher", "pusher-secret")))
	if r := e.do("GET", "/token?service=berth", nil, "Authorization", basicAuth("reader", "wrong-secret")); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %v", r)
	}
	if r := e.do("GET", "/token?service=berth", nil, "Authorization", basicAuth("reader", "wrong-again")); r.status != http.StatusTooManyRequests {
		t.Fatalf("second wrong password: %v, want 429", r)
	}
	tr := tokenResponse(t, e.do("GET", "/token?service=berth&scope=repository:ci/app:pull", nil, "Authorization", basicAuth("pusher", "pusher-secret")))
	if r := e.do("DELETE", "/v2/ci/app/manifests/latest", nil, "Authorization", "Bearer "+tr.Token); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
		t.Fatalf("delete without the scope: %v", r)
	}

	want := []string{
		"login ok pusher basic  ",
		"token ok pusher get  repository:ci/app:pull",
		"login failed reader basic  invalid credentials",
		"login denied reader basic  too many failed logins",
		"login ok pusher basic  ",
		"token ok pusher get  repository:ci/app:pull",
		"access denied pusher token ci/app delete not allowed",
	}
	got := auditLines(t, &buf)
	if !slices.Equal(got, want) {
		t.Errorf("audit lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	all := strings.Join(got, "\n")
	for _, secret := range []string{"pusher-secret", "wrong-secret", "wrong-again", tr.Token} {
		if strings.Contains(all, secret) {
			t.Errorf("an audit line holds a secret: %q", secret)
		}
	}
}
