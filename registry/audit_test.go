package registry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/audit"
)

// TestAuditWrites checks that every write through the API writes one audit
// line with what it changed and its outcome: pushes of blobs and manifests
// (with their tag), a mount, a delete, and pushes that failed (monolithic
// and chunked) with their reason.
func TestAuditWrites(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, Options{Audit: audit.New(slog.New(slog.NewJSONHandler(&buf, nil)))})
	img := e.pushImage("team/app", "v1", MediaTypeOCIManifest, "audit")
	cfg, layer := digest.FromBytes(img.Config), digest.FromBytes(img.Layer)
	wantStatus(t, e.do(req{Method: "POST", Path: "/v2/team/copy/blobs/uploads/?mount=" + layer.String() + "&from=team/app"}), http.StatusCreated)
	wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/team/app/manifests/" + img.Digest.String()}), http.StatusAccepted)
	bad := digest.FromString("not the body")
	wantError(t, e.do(req{Method: "POST", Path: "/v2/team/app/blobs/uploads/?digest=" + bad.String(), Body: []byte("body")}), http.StatusBadRequest, "DIGEST_INVALID")
	u, err := url.Parse(e.startUpload("team/app"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", bad.String())
	u.RawQuery = q.Encode()
	wantError(t, e.do(req{Method: "PUT", Path: u.RequestURI(), Body: []byte("chunked body")}), http.StatusBadRequest, "DIGEST_INVALID")

	want := []string{
		"push ok team/app " + cfg.String() + "  ",
		"push ok team/app " + layer.String() + "  ",
		"push ok team/app " + img.Digest.String() + " v1 ",
		"mount ok team/copy " + layer.String() + "  team/app",
		"delete ok team/app " + img.Digest.String() + "  ",
		"push failed team/app " + bad.String() + "  DIGEST_INVALID",
		"push failed team/app " + bad.String() + "  DIGEST_INVALID",
	}
	var got []string
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var l struct {
			Msg, Action, Outcome, Repository, Digest, Tag, From, Reason, Request string
			Audit                                                                bool
		}
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		if l.Msg != "audit" || !l.Audit || l.Request == "" {
			t.Errorf("audit line %+v: want msg audit, audit=true and the request id", l)
		}
		tail := l.From + l.Reason
		got = append(got, strings.Join([]string{l.Action, l.Outcome, l.Repository, l.Digest, l.Tag, tail}, " "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
