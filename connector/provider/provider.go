// Package provider adds to a cache's upstream what a registry needs beyond
// the generic distribution API: its own way to obtain credentials (a cloud
// provider's token exchange), a search, a repository listing, and hints
// for the health report (rate limits).
//
// Every upstream has a provider, "generic" unless configured otherwise
// (upstream.provider). The generic provider authenticates with a static
// user name and password (passwordFile is reread when it changes) or a
// Docker credential helper, lists the upstream's /v2/_catalog and has no
// search. The built-in ones (dockerhub, ecr, acr, gar, ghcr, gitlab) build
// on it. A custom build adds one with Register before berth reads its
// configuration; docs/PROVIDERS.md walks through writing one.
//
// A provider never sees the registry's clients or their requests: it is
// asked for credentials when berth's upstream client needs them, and the
// connector decides what to do with what it answers.
package provider

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/berthhq/berth/client/transport"
)

// Credentials are what requests to an upstream authenticate with: a user
// name and password (sent as Basic, or to the registry's token service),
// an identity (OAuth2 refresh) token, or a registry token sent as it is.
type Credentials = transport.Credentials

// Provider is what a registry needs beyond the distribution API. Only
// Credentials is required; a provider offers more by implementing the
// optional interfaces below (Searcher, Lister, Observer, Hinter,
// Invalidator), which the connector finds by type assertion.
type Provider interface {
	// Credentials returns what requests for scopes (the distribution
	// token scopes, "repository:NAME:pull"; none for /v2/) authenticate
	// with. Empty credentials mean anonymous access. It is called for
	// every request that needs authorization, so a provider that
	// exchanges tokens keeps them until shortly before they expire. An
	// error names what failed without secrets and without the scopes (it
	// is shown in the health report); it must not block for longer than
	// ctx allows.
	Credentials(ctx context.Context, scopes []string) (Credentials, error)
}

// Searcher is a Provider whose registry can be searched (Docker Hub's
// search API). Without it, an upstream contributes to searches only the
// names of its listing.
type Searcher interface {
	// Search returns up to n repositories whose name or description
	// matches term, as the upstream names them.
	Search(ctx context.Context, term string, n int) ([]Result, error)
}

// Lister is a Provider whose registry lists its repositories. Without it
// the upstream has no catalog in berth's (Docker Hub has none).
type Lister interface {
	// Repositories returns the upstream's repository names (the generic
	// provider reads /v2/_catalog through Env.Catalog).
	Repositories(ctx context.Context) ([]string, error)
}

// Observer is a Provider that looks at every answer of the upstream
// (its headers only: the body belongs to the request), for instance to
// read rate-limit headers.
type Observer interface {
	Observe(resp *http.Response)
}

// Hinter is a Provider that adds to the upstream's health report.
type Hinter interface {
	Hints() Hints
}

// Invalidator is a Provider told that the upstream refused the
// credentials it gave: it should obtain new ones for the next request
// rather than wait for the old ones to expire. It reports whether new
// ones may differ (a static password will not), so that the refused
// request is sent again only when that may help.
type Invalidator interface {
	Invalidate() bool
}

// Result is one repository a search found.
type Result struct {
	// Name is the repository's name at the upstream ("library/alpine").
	Name        string
	Description string
	Stars       int
	Official    bool
	Automated   bool
}

// Hints are what a provider adds to the health report.
type Hints struct {
	// RateLimit is the upstream's pull limit as it last announced it.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// RateLimit is a pull limit an upstream announced.
type RateLimit struct {
	// Limit is the number of requests allowed per Window.
	Limit int `json:"limit"`
	// Remaining is how many of them are left.
	Remaining int `json:"remaining"`
	// Window is the length of the window the limit applies to (0: not
	// announced).
	Window time.Duration `json:"-"`
	// WindowSeconds is Window for the JSON report.
	WindowSeconds int64 `json:"windowSeconds,omitempty"`
	// At is when the upstream announced it.
	At time.Time `json:"at"`
}

// Env is what berth hands a provider: the upstream's configuration and
// the means to reach it.
type Env struct {
	// Registry is the name of the cache (for messages and logs).
	Registry string
	// URL is the upstream's base URL, scheme and host only.
	URL *url.URL
	// Settings is the upstream's configuration.
	Settings Settings
	// HTTPClient sends the provider's own requests (token exchanges,
	// search): it has the upstream's TLS configuration and timeouts but
	// no authorization.
	HTTPClient *http.Client
	// TLS is the upstream's TLS configuration (nil: the system's), for
	// providers whose SDK builds its own HTTP client.
	TLS *tls.Config
	// Catalog reads the upstream's /v2/_catalog (authorized, paginated,
	// bounded) as upstream names.
	Catalog func(ctx context.Context) ([]string, error)
	// Now is the clock for expiry of credentials.
	Now func() time.Time
	// Log receives what the provider has to say.
	Log *slog.Logger
}

// Settings is the part of an upstream's configuration that providers
// read: the generic credentials and the sections of the built-in
// providers. Options holds the settings of a provider registered by a
// custom build (upstream.options), which it checks itself.
type Settings struct {
	// Username and Password are static credentials; PasswordFile, a file
	// holding the password (reread when it changes), replaces Password.
	Username     string
	Password     string
	PasswordFile string
	// CredentialHelper names a Docker credential helper
	// (docker-credential-NAME) asked for the upstream host's credentials.
	CredentialHelper string
	DockerHub        DockerHubConfig
	ECR              ECRConfig
	ACR              ACRConfig
	GAR              GARConfig
	// Options are a custom provider's settings.
	Options map[string]string
}

// Factory makes a provider. Check, optional, validates env.Settings
// without contacting anything, so that a bad setting is reported with the
// rest of the configuration when berth starts; New is called only after
// it passed (and may contact the provider's services, bounded by ctx).
type Factory struct {
	Check func(env Env) error
	New   func(ctx context.Context, env Env) (Provider, error)
	// Defaults, optional, fills in what the provider implies
	// (Docker Hub's URL and single-name prefix) before the upstream is
	// validated. It returns the URL and single-name prefix to use.
	Defaults func(url, singleNamePrefix string) (string, string)
}

// Generic is the name of the default provider.
const Generic = "generic"

var (
	mu         sync.RWMutex
	registered = map[string]Factory{}
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Register makes a provider available as upstream.provider NAME. Call it
// before berth reads its configuration, typically first in main before
// berthcmd.Execute. name is lower-case letters, digits and '-', starting
// with a letter. A registered provider takes the place of a built-in one
// of the same name. Register panics if name is invalid or registered
// already, or if f has no New: like database/sql.Register, it is called
// from code at start and a clash is a bug there.
func Register(name string, f Factory) {
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("provider: invalid name %q", name))
	}
	if f.New == nil {
		panic(fmt.Sprintf("provider %s: Factory.New is nil", name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registered[name]; dup {
		panic(fmt.Sprintf("provider %s: registered twice", name))
	}
	registered[name] = f
}

// Lookup returns the provider name ("" is Generic): a registered one, or
// else a built-in one.
func Lookup(name string) (Factory, bool) {
	if name == "" {
		name = Generic
	}
	mu.RLock()
	f, ok := registered[name]
	mu.RUnlock()
	if ok {
		return f, true
	}
	f, ok = builtins()[name]
	return f, ok
}

// Names returns the names of every provider, built-in and registered,
// sorted.
func Names() []string {
	set := map[string]bool{}
	for n := range builtins() {
		set[n] = true
	}
	mu.RLock()
	for n := range registered {
		set[n] = true
	}
	mu.RUnlock()
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// noOptions refuses upstream.options for a built-in provider, which
// takes its settings from its own section.
func noOptions(name string, env Env) error {
	if len(env.Settings.Options) > 0 {
		return fmt.Errorf("options: the %s provider takes none (they are for providers a custom build registers)", name)
	}
	return nil
}

func builtins() map[string]Factory {
	return map[string]Factory{
		Generic:     {Check: checkGeneric, New: newGenericProvider},
		"ghcr":      {Check: checkTokenUser("ghcr"), New: newGenericProvider},
		"gitlab":    {Check: checkTokenUser("gitlab"), New: newGenericProvider},
		"dockerhub": {Check: checkDockerHub, New: newDockerHub, Defaults: dockerHubDefaults},
		"ecr":       {Check: checkECR, New: newECR},
		"acr":       {Check: checkACR, New: newACR},
		"gar":       {Check: checkGAR, New: newGAR},
	}
}

// ErrNoCredentials is the category of a provider's failure to obtain
// credentials: its token service refused, answered wrongly, or could not
// be reached. The connector answers such failures with 502 and shows them
// in the health report.
var ErrNoCredentials = errors.New("no credentials")

// credentialsError wraps err as a provider's failure to obtain
// credentials.
func credentialsError(provider, format string, args ...any) error {
	return fmt.Errorf("%s: %w", provider, &credErr{fmt.Errorf(format, args...)})
}

type credErr struct{ err error }

func (e *credErr) Error() string   { return e.err.Error() }
func (e *credErr) Unwrap() []error { return []error{ErrNoCredentials, e.err} }
