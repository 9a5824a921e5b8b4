package e2e

import (
	"strings"
	"testing"
)

// TestAuthOCIConformance runs the OCI conformance suite against berth in token mode (the
// example configuration) as the admin user, and accepts nothing short of all passed: the
// suite gets its tokens from the challenges berth sends, so every challenge's scope must be
// what the request needs.
func TestAuthOCIConformance(t *testing.T) {
	t.Parallel()
	script := requireConformance(t)
	srv := startAuthBerth(t, exampleConfig(t, "auth-token.yaml"), nil)
	runConformance(t, script, srv.Addr, "in token mode", "OCI_USERNAME="+adminUser, "OCI_PASSWORD="+adminPass)
	if !t.Failed() && !strings.Contains(srv.log.String(), "token issued") {
		t.Error("the suite passed without ever getting a token: was authentication on?")
	}
}
