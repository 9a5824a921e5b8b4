package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

func TestReloadRoute(t *testing.T) {
	t.Parallel()
	calls := 0
	var fail error
	var seen Route
	e := newEnv(t, Options{
		Reload: func(context.Context) error { calls++; return fail },
		Authorize: func(w http.ResponseWriter, r *http.Request, rt Route) bool {
			seen = rt
			return true
		},
	})
	wantStatus(t, e.do(req{Method: "POST", Path: ReloadPath}), http.StatusOK)
	if calls != 1 || seen.Kind != KindReload || seen.Access != AccessAdmin {
		t.Fatalf("calls %d, route %+v: want one reload authorised as administration", calls, seen)
	}
	fail = errors.New("registries[0] (hub): upstream.url: required")
	res := e.do(req{Method: "POST", Path: ReloadPath})
	wantError(t, res, http.StatusUnprocessableEntity, "CONFIG_INVALID")
	wantError(t, e.do(req{Method: "GET", Path: ReloadPath}), http.StatusMethodNotAllowed, "UNSUPPORTED")
	wantError(t, newEnv(t, Options{}).do(req{Method: "POST", Path: ReloadPath}), http.StatusMethodNotAllowed, "UNSUPPORTED")
}
