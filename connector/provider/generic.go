package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/transport"
)

// genericProvider is the default: static credentials (a password file
// reread when it changes) or a credential helper, and the V2 catalog.
type genericProvider struct {
	env Env
	src credSource
}

// credSource is where the generic provider's credentials come from.
type credSource interface {
	credentials(ctx context.Context) (Credentials, error)
}

// staticSource is a user name and password as configured.
type staticSource struct{ c Credentials }

func (s staticSource) credentials(context.Context) (Credentials, error) { return s.c, nil }

func checkGeneric(env Env) error {
	s := env.Settings
	switch {
	case len(s.Options) > 0:
		return noOptions("built-in", env)
	case s.CredentialHelper != "" && (s.Username != "" || s.Password != "" || s.PasswordFile != ""):
		return errors.New("credentialHelper: set it or username and password, not both")
	case s.CredentialHelper != "" && (strings.ContainsAny(s.CredentialHelper, `/\ `) || strings.HasPrefix(s.CredentialHelper, "docker-credential-")):
		return fmt.Errorf("credentialHelper %q: want the helper's name without docker-credential- (ecr-login runs docker-credential-ecr-login)", s.CredentialHelper)
	}
	return nil
}

// checkTokenUser is the check of registries that take a personal or deploy
// token as the password of a named user (GHCR, GitLab).
func checkTokenUser(name string) func(Env) error {
	return func(env Env) error {
		if err := checkGeneric(env); err != nil {
			return err
		}
		s := env.Settings
		if s.CredentialHelper == "" && (s.Password != "" || s.PasswordFile != "") && s.Username == "" {
			switch name {
			case "gitlab":
				return errors.New("username: required with a token: the GitLab user of a personal access token, gitlab+deploy-token-N for a deploy token, or gitlab-ci-token for a CI job token")
			default:
				return errors.New("username: required with a token: the GitHub user that owns the personal access token")
			}
		}
		return nil
	}
}

func newGenericProvider(_ context.Context, env Env) (Provider, error) {
	return &genericProvider{env: env, src: staticCredentials(env)}, nil
}

func (g *genericProvider) Credentials(ctx context.Context, _ []string) (Credentials, error) {
	return g.src.credentials(ctx)
}

// Repositories implements Lister: the V2 catalog.
func (g *genericProvider) Repositories(ctx context.Context) ([]string, error) {
	if g.env.Catalog == nil {
		return nil, nil
	}
	return g.env.Catalog(ctx)
}

// Invalidate implements Invalidator: a helper is asked again, a
// password file read again.
func (g *genericProvider) Invalidate() bool {
	if inv, ok := g.src.(interface{ invalidate() }); ok {
		inv.invalidate()
		return true
	}
	return false
}

// staticCredentials returns the generic credential source of env: the
// credential helper, the password file, the password, or nothing.
func staticCredentials(env Env) credSource {
	s := env.Settings
	switch {
	case s.CredentialHelper != "":
		return &helperSource{get: credentials.Helper(s.CredentialHelper, nil), host: env.URL.Host, now: env.Now, name: s.CredentialHelper}
	case s.PasswordFile != "":
		return &passwordFile{path: s.PasswordFile, user: s.Username}
	}
	return staticSource{Credentials{Username: s.Username, Password: s.Password}}
}

// passwordFile reads a password from a file, again whenever the file's
// size or modification time changed, so a rotated secret (a mounted
// Kubernetes secret, a token a job renews) is used without a restart.
type passwordFile struct {
	path string
	user string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	pass  string
	read  bool
}

// maxPasswordFile bounds what is read of a password file.
const maxPasswordFile = 64 << 10

func (p *passwordFile) invalidate() {
	p.mu.Lock()
	p.mtime = time.Time{}
	p.mu.Unlock()
}

func (p *passwordFile) credentials(context.Context) (Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fi, err := os.Stat(p.path)
	if err != nil {
		if p.read {
			// Keep the last password while the file is being replaced.
			return Credentials{Username: p.user, Password: p.pass}, nil
		}
		return Credentials{}, fmt.Errorf("passwordFile: %w", err)
	}
	if !p.read || !fi.ModTime().Equal(p.mtime) || fi.Size() != p.size {
		if fi.Size() > maxPasswordFile {
			return Credentials{}, fmt.Errorf("passwordFile %s: %d bytes, more than a password takes", p.path, fi.Size())
		}
		b, err := os.ReadFile(p.path)
		if err != nil {
			return Credentials{}, fmt.Errorf("passwordFile: %w", err)
		}
		p.pass = strings.TrimRight(string(b), "\r\n")
		p.mtime, p.size, p.read = fi.ModTime(), fi.Size(), true
	}
	return Credentials{Username: p.user, Password: p.pass}, nil
}

// helperTTL is how long a credential helper's answer is used before the
// helper is asked again (it may be slow: ecr-login calls AWS). A refusal
// by the upstream asks it again at once.
const helperTTL = 5 * time.Minute

// helperSource asks a Docker credential helper for the upstream host's
// credentials.
type helperSource struct {
	get  transport.CredentialFunc
	host string
	name string
	now  func() time.Time

	mu      sync.Mutex
	creds   Credentials
	fetched time.Time
	valid   bool
}

func (h *helperSource) credentials(ctx context.Context) (Credentials, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.valid && now.Sub(h.fetched) < helperTTL {
		return h.creds, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := h.get(ctx, h.host)
	if err != nil {
		return Credentials{}, credentialsError("credentialHelper "+h.name, "%v", err)
	}
	h.creds, h.fetched, h.valid = c, now, true
	return c, nil
}

func (h *helperSource) invalidate() {
	h.mu.Lock()
	h.valid = false
	h.mu.Unlock()
}

// expiring keeps one credential until shortly before it expires and
// fetches a new one then; concurrent callers wait for one fetch.
type expiring[T any] struct {
	now func() time.Time
	// fetch returns the value and when it expires.
	fetch func(ctx context.Context) (T, time.Time, error)

	mu      sync.Mutex
	val     T
	expires time.Time
	renewAt time.Time
	valid   bool
}

// maxRenewAhead is the most time before its expiry at which a
// credential is renewed: at a quarter of its lifetime before, for short
// lifetimes.
const maxRenewAhead = 15 * time.Minute

func (e *expiring[T]) get(ctx context.Context) (T, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if e.valid && now.Before(e.renewAt) {
		return e.val, nil
	}
	v, exp, err := e.fetch(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	if !exp.After(now) {
		var zero T
		return zero, fmt.Errorf("the credential expired at %s, before it could be used", exp.UTC().Format(time.RFC3339))
	}
	ahead := min(exp.Sub(now)/4, maxRenewAhead)
	e.val, e.expires, e.renewAt, e.valid = v, exp, exp.Add(-ahead), true
	return v, nil
}

func (e *expiring[T]) invalidate() {
	e.mu.Lock()
	e.valid = false
	e.mu.Unlock()
}
