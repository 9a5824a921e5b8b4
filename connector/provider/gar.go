package provider

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// GARConfig is the upstream.gar section.
type GARConfig struct {
	// CredentialsFile is a service account key (JSON); without it the
	// ambient credentials are used (GOOGLE_APPLICATION_CREDENTIALS, the
	// gcloud user, the metadata server of GCE, GKE and Cloud Run).
	CredentialsFile string `yaml:"credentialsFile"`
}

// garScope is the OAuth2 scope of registry access.
const garScope = "https://www.googleapis.com/auth/cloud-platform"

// garUser is the user name Artifact Registry and GCR take an access
// token with.
const garUser = "oauth2accesstoken"

func checkGAR(env Env) error {
	s := env.Settings
	if err := noOptions("gar", env); err != nil {
		return err
	}
	if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.CredentialHelper != "" {
		return errors.New("gar: username, password and credentialHelper do not apply: the token comes from Google (set gar.credentialsFile, or use the ambient credentials)")
	}
	return nil
}

// garProvider authenticates as oauth2accesstoken with a Google OAuth2
// access token from a service account key or the ambient credentials.
type garProvider struct {
	ts oauth2.TokenSource
}

func newGAR(_ context.Context, env Env) (Provider, error) {
	// The token source outlives this call: it gets a context of its own
	// that carries the HTTP client (the upstream's TLS settings).
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTPClient)
	var creds *google.Credentials
	var err error
	if f := env.Settings.GAR.CredentialsFile; f != "" {
		b, rerr := os.ReadFile(f)
		if rerr != nil {
			return nil, fmt.Errorf("gar.credentialsFile: %w", rerr)
		}
		creds, err = google.CredentialsFromJSON(tctx, b, garScope)
	} else {
		creds, err = google.FindDefaultCredentials(tctx, garScope)
	}
	if err != nil {
		return nil, fmt.Errorf("gar: %w", err)
	}
	return &garProvider{ts: creds.TokenSource}, nil
}

// Credentials implements Provider. The token source keeps the access
// token until shortly before it expires.
func (p *garProvider) Credentials(context.Context, []string) (Credentials, error) {
	t, err := p.ts.Token()
	if err != nil {
		return Credentials{}, credentialsError("gar", "access token: %v", err)
	}
	if t.AccessToken == "" {
		return Credentials{}, credentialsError("gar", "access token: the answer holds no token")
	}
	return Credentials{Username: garUser, Password: t.AccessToken}, nil
}
