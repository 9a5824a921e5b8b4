// Package config is berth's configuration: one struct, decoded strictly
// from YAML, overridden by BERTH_* environment variables and then by
// command-line flags, and validated with messages that say what to fix.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/mediatype"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/notifications"
)

// Config is the whole configuration. The yaml names are the file's keys;
// each key also has an environment variable: BERTH_ followed by the key
// path in upper case joined with underscores (storage.driver is
// BERTH_STORAGE_DRIVER).
type Config struct {
	// Addr is the HOST:PORT to listen on.
	Addr string `yaml:"addr"`
	// Data is the directory for everything berth keeps on disk by default.
	Data string `yaml:"data"`

	Storage   Storage   `yaml:"storage"`
	Metadata  Metadata  `yaml:"metadata"`
	Manifests Manifests `yaml:"manifests"`
	Uploads   Uploads   `yaml:"uploads"`
	Server    Server    `yaml:"server"`
	Log       Log       `yaml:"log"`
	// GC schedules garbage collection; see package gc.
	GC gc.Config `yaml:"gc"`
	// Retention holds the retention rules (file only); see package gc.
	Retention gc.Retention `yaml:"retention"`
	Auth      Auth         `yaml:"auth"`
	TLS       TLS          `yaml:"tls"`
	// Registries route repository names by prefix to hosted, cache
	// (pull-through) and virtual registries; see package connector.
	Registries connector.Config `yaml:"registries"`
	// UI is the web UI; see package ui.
	UI UI `yaml:"ui"`
	// Notifications sends webhooks; see package notifications.
	Notifications notifications.Config `yaml:"notifications"`
	// Debug is the debug listener: metrics and the profiler.
	Debug Debug `yaml:"debug"`
	// Tracing exports OpenTelemetry spans.
	Tracing Tracing `yaml:"tracing"`
}

// Debug configures the debug listener, which serves /metrics (Prometheus)
// and /debug/pprof/. It has no authentication: keep it on a loopback or
// internal address.
type Debug struct {
	// Addr is the listener's HOST:PORT; empty turns it off.
	Addr string `yaml:"addr"`
	// RepositoryLabels adds repository names to the request metrics: a
	// series per repository, for debugging only.
	RepositoryLabels bool `yaml:"repositoryLabels"`
}

// Tracing configures OpenTelemetry tracing. It is on when Enabled is set
// or when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is; the exporter (OTLP over HTTP) is
// configured by the standard OTEL_* variables.
type Tracing struct {
	Enabled bool `yaml:"enabled"`
}

// UI configures the web UI served under /ui/.
type UI struct {
	// Enabled serves it (the default).
	Enabled bool `yaml:"enabled"`
}

// Server tunes the HTTP server.
type Server struct {
	// BodyIdleTimeout ends a request whose body sends nothing for this
	// long (a slow but moving body is fine), so a stalled client cannot
	// hold an upload session or a connection.
	BodyIdleTimeout time.Duration `yaml:"bodyIdleTimeout"`
	// DrainTimeout is how long a stopping server waits for requests in
	// progress before it cuts them (uploads cut that way resume).
	DrainTimeout time.Duration `yaml:"drainTimeout"`
}

// Manifests tunes manifest validation.
type Manifests struct {
	// MaxSize is the largest manifest accepted, in bytes.
	MaxSize int64 `yaml:"maxSize"`
	// RequireLayers rejects image manifests whose layers are not all in the
	// repository (sparse manifests are accepted by default).
	RequireLayers bool `yaml:"requireLayers"`
	// DeleteReferenced allows deleting a manifest that an index in the
	// same repository lists, which leaves that index unpullable.
	DeleteReferenced bool `yaml:"deleteReferenced"`
	// CacheBytes bounds the manifests kept in memory for GETs by tag and
	// digest (0 turns the cache off).
	CacheBytes int64 `yaml:"cacheBytes"`
}

// Uploads tunes upload sessions.
type Uploads struct {
	// MaxAge is how long an untouched upload session is kept.
	MaxAge time.Duration `yaml:"maxAge"`
}

// Log tunes logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
	// Audit writes the audit log (lines with audit=true; see
	// internal/audit).
	Audit bool `yaml:"audit"`
}

// Authentication modes.
const (
	AuthNone  = "none"
	AuthBasic = "basic"
	AuthToken = "token"
)

// Auth configures authentication and access control. File paths in this
// section and in TLS, when relative and read from a config file, are
// relative to that file's directory.
type Auth struct {
	// Mode is none (default; only on loopback addresses unless serve gets
	// --insecure-open), basic or token.
	Mode string `yaml:"mode"`
	// Realm is the realm of Basic challenges.
	Realm string `yaml:"realm"`
	// Htpasswd is the file of users and bcrypt hashes; default
	// DATA/htpasswd.
	Htpasswd string `yaml:"htpasswd"`
	// TrustForwardedProto makes the token realm follow X-Forwarded-Proto,
	// for berth behind a TLS-terminating proxy.
	TrustForwardedProto bool `yaml:"trustForwardedProto"`
	// Token configures token mode.
	Token Token `yaml:"token"`
	// Groups maps group names to their members.
	Groups map[string][]string `yaml:"groups"`
	// Rules are the ordered access rules.
	Rules []Rule `yaml:"rules"`
	// LoginLimit slows down failed logins.
	LoginLimit LoginLimit `yaml:"loginLimit"`
}

// Token configures token mode: berth's own token service, or, when JWKS
// or RootCerts is set, an external issuer whose tokens berth only verifies.
type Token struct {
	// Realm is where clients get tokens: a path on this server (default
	// /token) or an absolute URL (required for an external issuer).
	Realm string `yaml:"realm"`
	// Service is the service name in challenges and the tokens' audience.
	Service string `yaml:"service"`
	// Issuer is the iss claim: berth's own (default "berth"), or the one
	// an external issuer's tokens must carry.
	Issuer string `yaml:"issuer"`
	// TTL is the life of issued access tokens.
	TTL time.Duration `yaml:"ttl"`
	// RefreshTTL is the life of issued refresh tokens.
	RefreshTTL time.Duration `yaml:"refreshTTL"`
	// Key is the PEM signing key; default DATA/token-key.pem, generated on
	// first start.
	Key string `yaml:"key"`
	// Algorithm is the algorithm of a generated key: ES256 or EdDSA.
	Algorithm string `yaml:"algorithm"`
	// JWKS is an external issuer's key set: a file or an http(s) URL.
	JWKS string `yaml:"jwks"`
	// RootCerts is a PEM bundle: an external issuer's tokens may be signed
	// by a certificate (x5c header) chaining to one of these roots.
	RootCerts string `yaml:"rootCerts"`
	// Algorithms is the external issuer's algorithm allow-list.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway"`
}

// External reports whether tokens come from an external issuer.
func (t Token) External() bool { return t.JWKS != "" || t.RootCerts != "" }

// Rule is one access rule. The first rule matching the caller, the
// resource and the action decides.
type Rule struct {
	// Repositories are globs: '*' within a path component, '**' across.
	Repositories []string `yaml:"repositories"`
	// Catalog makes the rule grant (or deny) the catalog and search.
	Catalog bool `yaml:"catalog"`
	// Users are user names, "anonymous" (everyone) or "*" (signed-in users).
	Users []string `yaml:"users"`
	// Groups are names from Auth.Groups.
	Groups []string `yaml:"groups"`
	// Actions are pull, push, delete or "*".
	Actions []string `yaml:"actions"`
	// Deny makes the rule refuse instead of allow.
	Deny bool `yaml:"deny"`
}

// LoginLimit is the failed-login budget per client address and per user.
type LoginLimit struct {
	// Burst failures are allowed before logins are refused.
	Burst int `yaml:"burst"`
	// PerMinute failures are forgiven each minute.
	PerMinute int `yaml:"perMinute"`
}

// TLS configures HTTPS.
type TLS struct {
	// Cert and Key are PEM files; both set turns HTTPS on. They are
	// reloaded when they change.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM bundle of CAs for client certificates; a verified
	// certificate authenticates the user named by its common name.
	ClientCA string `yaml:"clientCA"`
	// ClientAuth is optional (default) or require.
	ClientAuth string `yaml:"clientAuth"`
}

// Default returns the zero-configuration defaults.
func Default() Config {
	return Config{
		Addr:      "127.0.0.1:5000",
		Data:      "./berth-data",
		Storage:   Storage{Driver: "filesystem"},
		Metadata:  Metadata{Driver: "sqlite"},
		Manifests: Manifests{MaxSize: mediatype.MaxManifestSize, CacheBytes: metadata.DefaultCacheBytes},
		Uploads:   Uploads{MaxAge: 168 * time.Hour},
		Server:    Server{BodyIdleTimeout: time.Minute, DrainTimeout: 30 * time.Second},
		Log:       Log{Level: "info", Format: "text", Audit: true},
		GC:        gc.DefaultConfig(),
		UI:        UI{Enabled: true},
		Auth: Auth{
			Mode:  AuthNone,
			Realm: "berth",
			Token: Token{
				Realm:      "/token",
				Service:    "berth",
				TTL:        5 * time.Minute,
				RefreshTTL: 720 * time.Hour,
				Algorithm:  "ES256",
				Leeway:     time.Minute,
			},
			LoginLimit: LoginLimit{Burst: 10, PerMinute: 10},
		},
	}
}

// LoadFile decodes a YAML file over c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Checked before decoding, for messages that name the setting, and
	// before the decoder reads a bare number as nanoseconds; what does not
	// parse is left to the decoder's message.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err == nil {
		if err := checkDocument(&doc, reflect.TypeOf(c)); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	c.resolveFiles(filepath.Dir(path))
	return nil
}

// resolveFiles makes the relative file paths of the auth and tls sections
// relative to dir, the directory of the config file that named them, so a
// config file and the files beside it work from any working directory.
func (c *Config) resolveFiles(dir string) {
	for _, p := range []*string{&c.Auth.Htpasswd, &c.Auth.Token.Key, &c.Auth.Token.RootCerts, &c.TLS.Cert, &c.TLS.Key, &c.TLS.ClientCA} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if j := c.Auth.Token.JWKS; j != "" && !filepath.IsAbs(j) && !strings.Contains(j, "://") {
		c.Auth.Token.JWKS = filepath.Join(dir, j)
	}
	c.Registries.ResolveFiles(dir)
	c.Notifications.ResolveFiles(dir)
}

// EnvPrefix starts every environment variable berth reads.
const EnvPrefix = "BERTH_"

// envKeys maps environment variable names to the field they set.
func envKeys(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.ToUpper(strings.Split(f.Tag.Get("yaml"), ",")[0])
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if f.Type.Kind() == reflect.Struct {
			envKeys(v.Field(i), key+"_", out)
			continue
		}
		out[key] = v.Field(i)
	}
}

// ApplyEnv sets fields from BERTH_* variables in env (os.Environ form).
// Variables naming no setting are errors, except those in ignore (names
// handled elsewhere, such as BERTH_CONFIG).
func (c *Config) ApplyEnv(env []string, ignore ...string) error {
	keys := map[string]reflect.Value{}
	envKeys(reflect.ValueOf(c).Elem(), EnvPrefix, keys)
	// The sections of registered drivers and stores: a variable of one the
	// file did not set adds it.
	adopt := map[string]func(){}
	storageKind.envSections(&c.Storage.Sections, keys, adopt)
	metadataKind.envSections(&c.Metadata.Sections, keys, adopt)
	var errs []error
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || contains(ignore, k) {
			continue
		}
		f, ok := keys[k]
		if !ok {
			errs = append(errs, unknownEnv(k, v, keys))
			continue
		}
		if err := setField(f, v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s: %w", k, err))
			continue
		}
		if add, ok := adopt[k]; ok {
			add()
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]reflect.Value) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// durationType is the type of settings written as Go durations ("90s",
// "5m", "24h").
var durationType = reflect.TypeOf(time.Duration(0))

func setField(f reflect.Value, s string) error {
	if f.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (write it like 90s, 5m or 24h)", s)
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", s)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		f.SetInt(n)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from the environment")
		}
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate checks the values and fills in derived defaults (paths under
// Data). It reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if host, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr %q: want HOST:PORT, e.g. 127.0.0.1:5000", c.Addr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("addr %q: port must be a number from 0 to 65535", c.Addr)
	} else if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		bad("addr %q: invalid host", c.Addr)
	}
	if c.Data == "" {
		bad("data: must name a directory")
	}
	if d := c.Server.BodyIdleTimeout; d < time.Second || d > time.Hour {
		bad("server.bodyIdleTimeout %v: want from 1s to 1h", d)
	}
	if d := c.Server.DrainTimeout; d < 0 || d > time.Hour {
		bad("server.drainTimeout %v: want from 0s (cut at once) to 1h", d)
	}
	if a := c.Debug.Addr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			bad("debug.addr %q: want HOST:PORT, e.g. 127.0.0.1:5001", a)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("debug.addr %q: port must be a number from 0 to 65535", a)
		} else if a == c.Addr {
			bad("debug.addr %q: the registry listens there (addr); pick another port", a)
		}
	}
	if err := c.Notifications.Validate(); err != nil {
		errs = append(errs, err)
	}
	c.validateBackends(bad)
	if c.Manifests.CacheBytes < 0 || c.Manifests.CacheBytes > 1<<34 {
		bad("manifests.cacheBytes %d: want from 0 (off) to 17179869184 bytes", c.Manifests.CacheBytes)
	}
	if c.Manifests.MaxSize < 1024 || c.Manifests.MaxSize > 1<<30 {
		bad("manifests.maxSize %d: want from 1024 to 1073741824 bytes", c.Manifests.MaxSize)
	}
	if c.Uploads.MaxAge < time.Hour {
		bad("uploads.maxAge %v: want at least 1h", c.Uploads.MaxAge)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: want text or json", c.Log.Format)
	}
	c.validateAuth(bad)
	if err := c.Registries.Validate(); err != nil {
		errs = append(errs, err)
	}
	c.validateTLS(bad)
	if err := c.GC.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) validateAuth(bad func(string, ...any)) {
	a := &c.Auth
	switch a.Mode {
	case AuthNone:
		if len(a.Rules) > 0 {
			bad("auth.rules are set but auth.mode is none: choose basic or token for them to apply")
		}
		return
	case AuthBasic, AuthToken:
	default:
		bad("auth.mode %q: want none, basic or token", a.Mode)
		return
	}
	if a.Htpasswd == "" && !(a.Mode == AuthToken && a.Token.External()) {
		a.Htpasswd = filepath.Join(c.Data, "htpasswd")
	}
	if a.Realm == "" || strings.ContainsAny(a.Realm, "\"\\\r\n") {
		bad("auth.realm %q: want a name without quotes or backslashes", a.Realm)
	}
	if a.LoginLimit.Burst < 0 || a.LoginLimit.PerMinute < 0 {
		bad("auth.loginLimit: burst and perMinute must not be negative (0 turns the limit off)")
	}
	for i, r := range a.Rules {
		if len(r.Repositories) == 0 && !r.Catalog {
			bad("auth.rules[%d]: set repositories, catalog: true, or both", i)
		}
		for _, p := range r.Repositories {
			if _, err := glob.Compile(p); err != nil {
				bad("auth.rules[%d].repositories: %v", i, err)
			}
		}
		if len(r.Users) == 0 && len(r.Groups) == 0 {
			bad("auth.rules[%d]: set users or groups (\"anonymous\" means everyone)", i)
		}
		for _, g := range r.Groups {
			if _, ok := a.Groups[g]; !ok {
				bad("auth.rules[%d]: group %q is not defined under auth.groups", i, g)
			}
		}
		for _, act := range r.Actions {
			switch act {
			case "pull", "push", "delete", "*":
			default:
				bad("auth.rules[%d]: action %q: want pull, push, delete or *", i, act)
			}
		}
		if len(r.Repositories) > 0 && len(r.Actions) == 0 {
			bad("auth.rules[%d]: repositories without actions", i)
		}
	}
	if len(a.Rules) == 0 {
		bad("auth.rules: with auth.mode %s, at least one rule is needed, or nobody may do anything", a.Mode)
	}
	if a.Mode != AuthToken {
		return
	}
	t := &a.Token
	if t.Service == "" || strings.ContainsAny(t.Service, "\"\\") {
		bad("auth.token.service %q: want a name without quotes or backslashes", t.Service)
	}
	if t.Leeway < 0 || t.Leeway > 10*time.Minute {
		bad("auth.token.leeway %v: want from 0s to 10m", t.Leeway)
	}
	absRealm := strings.HasPrefix(t.Realm, "https://") || strings.HasPrefix(t.Realm, "http://")
	if t.External() {
		if !absRealm {
			bad("auth.token.realm %q: with an external issuer, the realm must be the issuer's absolute http(s) URL", t.Realm)
		}
		if t.Issuer == "" {
			bad("auth.token.issuer: name the iss claim the external issuer's tokens carry")
		}
		for _, alg := range t.Algorithms {
			if strings.HasPrefix(alg, "HS") || strings.EqualFold(alg, "none") {
				bad("auth.token.algorithms: %q is refused (only asymmetric algorithms can be verified safely)", alg)
			}
		}
		return
	}
	if !absRealm && !strings.HasPrefix(t.Realm, "/") {
		bad("auth.token.realm %q: want a path such as /token or an absolute http(s) URL", t.Realm)
	}
	if absRealm && strings.ContainsAny(t.Realm, "\" ") {
		bad("auth.token.realm %q: invalid URL", t.Realm)
	}
	if t.Issuer == "" {
		t.Issuer = "berth"
	}
	if t.TTL < 10*time.Second || t.TTL > 24*time.Hour {
		bad("auth.token.ttl %v: want from 10s to 24h", t.TTL)
	}
	if t.RefreshTTL < time.Hour {
		bad("auth.token.refreshTTL %v: want at least 1h", t.RefreshTTL)
	}
	switch t.Algorithm {
	case "ES256", "EdDSA":
	default:
		bad("auth.token.algorithm %q: want ES256 or EdDSA", t.Algorithm)
	}
	if t.Key == "" {
		t.Key = filepath.Join(c.Data, "token-key.pem")
	}
	if len(t.Algorithms) > 0 {
		bad("auth.token.algorithms: only for an external issuer (set jwks or rootCerts)")
	}
}

func (c *Config) validateTLS(bad func(string, ...any)) {
	t := c.TLS
	if (t.Cert == "") != (t.Key == "") {
		bad("tls: set both cert and key, or neither")
	}
	if t.ClientCA != "" && t.Cert == "" {
		bad("tls.clientCA: needs tls.cert and tls.key")
	}
	switch t.ClientAuth {
	case "", "optional":
	case "require":
		if t.ClientCA == "" {
			bad("tls.clientAuth require: needs tls.clientCA")
		}
	default:
		bad("tls.clientAuth %q: want optional or require", t.ClientAuth)
	}
}

// TLSEnabled reports whether berth serves HTTPS.
func (c *Config) TLSEnabled() bool { return c.TLS.Cert != "" }

// OpenWithoutAuth reports whether the registry would accept anyone: no
// authentication mode and no required client certificate.
func (c *Config) OpenWithoutAuth() bool {
	return c.Auth.Mode == AuthNone && c.TLS.ClientAuth != "require"
}
