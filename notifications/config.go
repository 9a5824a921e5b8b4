package notifications

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/glob"
)

// Config is the notifications section of berth's configuration.
type Config struct {
	// Endpoints receive the events; none turns notifications off.
	Endpoints []Endpoint `yaml:"endpoints"`
}

// Endpoint is one receiver of events.
type Endpoint struct {
	// Name identifies the endpoint in the queue, the logs and the
	// metrics: letters, digits, '.', '_' and '-'.
	Name string `yaml:"name"`
	// URL is where envelopes are POSTed (http or https).
	URL string `yaml:"url"`
	// Headers are added to every request (Authorization, for example).
	Headers map[string][]string `yaml:"headers"`
	// Timeout bounds one delivery, from connecting to the answer.
	Timeout time.Duration `yaml:"timeout"`
	// Events lists the actions sent (push, pull, delete, mount); empty
	// sends all of them.
	Events []string `yaml:"events"`
	// Repositories are globs of the repositories whose events are sent
	// (internal/glob: "team/**"); empty sends every repository's.
	Repositories []string `yaml:"repositories"`
	// Secret, when set, signs each body: X-Berth-Signature carries
	// sha256=HEX, the HMAC-SHA256 of the body with this key.
	Secret string `yaml:"secret"`
	// SecretFile holds the secret (its first line), instead of Secret;
	// relative to the config file.
	SecretFile string `yaml:"secretFile"`
	// Backoff is the wait before the first retry of a failed delivery;
	// each further failure doubles it, up to MaxBackoff.
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"maxBackoff"`
	// MaxEvents bounds the events of one envelope. The default, 1, is
	// what consumers written for distribution's registry expect.
	MaxEvents int `yaml:"maxEvents"`
	// MaxPending bounds the endpoint's queue while its deliveries fail:
	// after a failure, the oldest events beyond the newest MaxPending are
	// dropped (logged and counted), so an endpoint that is gone cannot
	// fill the database.
	MaxPending int64 `yaml:"maxPending"`
}

// Defaults of an endpoint's settings.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultMaxEvents  = 1
	DefaultMaxPending = 100_000
	// MaxEventsLimit is the most events an envelope may hold.
	MaxEventsLimit = 100
	// MaxPendingLimit is the largest maxPending.
	MaxPendingLimit = 100_000_000
)

// withDefaults fills in the unset settings.
func (e Endpoint) withDefaults() Endpoint {
	if e.Timeout == 0 {
		e.Timeout = DefaultTimeout
	}
	if e.Backoff == 0 {
		e.Backoff = DefaultBackoff
	}
	if e.MaxBackoff == 0 {
		e.MaxBackoff = max(DefaultMaxBackoff, e.Backoff)
	}
	if e.MaxEvents == 0 {
		e.MaxEvents = DefaultMaxEvents
	}
	if e.MaxPending == 0 {
		e.MaxPending = DefaultMaxPending
	}
	return e
}

// Actions events may report.
var actions = []string{"push", "pull", "delete", "mount"}

// ResolveFiles makes relative secret files relative to dir, the directory
// of the config file that named them.
func (c *Config) ResolveFiles(dir string) {
	for i := range c.Endpoints {
		if f := c.Endpoints[i].SecretFile; f != "" && !filepath.IsAbs(f) {
			c.Endpoints[i].SecretFile = filepath.Join(dir, f)
		}
	}
}

// Validate checks the section; errors name the setting
// (notifications.endpoints[0].url).
func (c Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i, e := range c.Endpoints {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("notifications.endpoints[%d].%s", i, fmt.Sprintf(format, args...)))
		}
		switch {
		case e.Name == "":
			bad("name: required")
		case !validName(e.Name):
			bad("name %q: use letters, digits, '.', '_' and '-' (at most 64)", e.Name)
		case names[e.Name]:
			bad("name %q: another endpoint has it", e.Name)
		}
		names[e.Name] = true
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("url %q: want an http(s) URL", e.URL)
		}
		if e.Timeout != 0 && (e.Timeout < 100*time.Millisecond || e.Timeout > 5*time.Minute) {
			bad("timeout %v: want from 100ms to 5m", e.Timeout)
		}
		if e.Backoff < 0 || (e.Backoff > 0 && e.Backoff < 10*time.Millisecond) {
			bad("backoff %v: want at least 10ms", e.Backoff)
		}
		if e.MaxBackoff < 0 || (e.MaxBackoff > 0 && e.MaxBackoff < e.Backoff) {
			bad("maxBackoff %v: want at least backoff", e.MaxBackoff)
		}
		if e.MaxEvents < 0 || e.MaxEvents > MaxEventsLimit {
			bad("maxEvents %d: want from 1 to %d", e.MaxEvents, MaxEventsLimit)
		}
		if e.MaxPending < 0 || e.MaxPending > MaxPendingLimit {
			bad("maxPending %d: want from 1 to %d", e.MaxPending, MaxPendingLimit)
		}
		for _, a := range e.Events {
			if !contains(actions, a) {
				bad("events: %q: want push, pull, delete or mount", a)
			}
		}
		for _, p := range e.Repositories {
			if _, err := glob.Compile(p); err != nil {
				bad("repositories: %v", err)
			}
		}
		if e.Secret != "" && e.SecretFile != "" {
			bad("secretFile: set secret or secretFile, not both")
		}
		for k := range e.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n") {
				bad("headers: %q is not a header name", k)
			}
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// secret returns the endpoint's signing key, read from SecretFile when set.
func (e Endpoint) secret() ([]byte, error) {
	if e.SecretFile == "" {
		return []byte(e.Secret), nil
	}
	b, err := os.ReadFile(e.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: secretFile: %w", e.Name, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return nil, fmt.Errorf("endpoint %s: secretFile %s is empty", e.Name, e.SecretFile)
	}
	return []byte(line), nil
}
