package registry

import (
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestOpenBlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	data := []byte(`{"architecture":"amd64","os":"linux"}`)
	d := e.pushBlob("app", data)

	rc, size, err := e.reg.OpenBlob(t.Context(), "app", d)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != string(data) || size != int64(len(data)) {
		t.Fatalf("OpenBlob read %q (size %d), %v; want %q", got, size, err, data)
	}

	var re *Error
	for _, tc := range []struct {
		name string
		d    digest.Digest
		want func(error) bool
	}{
		// Another repository may not serve the blob it does not link.
		{"other", d, func(err error) bool { return errors.As(err, &re) && re.Code == ErrBlobUnknown }},
		{"app", digest.FromString("absent"), func(err error) bool { return errors.As(err, &re) && re.Code == ErrBlobUnknown }},
		{"app", "sha256:nothex", func(err error) bool { return errors.As(err, &re) && re.Code == ErrDigestInvalid }},
		{"Bad/Name", d, func(err error) bool { return errors.As(err, &re) && re.Code == ErrNameInvalid }},
	} {
		rc, _, err := e.reg.OpenBlob(t.Context(), tc.name, tc.d)
		if rc != nil {
			rc.Close()
		}
		if !tc.want(err) {
			t.Errorf("OpenBlob(%s, %s) = %v", tc.name, tc.d, err)
		}
	}
}
