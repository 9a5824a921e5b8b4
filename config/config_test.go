package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage/driver/s3"
)

// writeFile writes a config file into a temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// errorCount is the number of errors joined in err.
func errorCount(err error) int {
	if err == nil {
		return 0
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

// wantErrorContaining fails unless err's text contains every part.
func wantErrorContaining(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestDefaultsValidate(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Addr != "127.0.0.1:5000" || c.Data != "./berth-data" || c.Storage.Driver != "filesystem" ||
		c.Metadata.Driver != "sqlite" || c.Manifests.MaxSize != 4<<20 || c.Manifests.RequireLayers ||
		c.Uploads.MaxAge != 168*time.Hour || c.Log.Level != "info" || c.Log.Format != "text" {
		t.Errorf("unexpected defaults: %+v", c)
	}
	// Derived paths live under Data.
	if want := filepath.Join("./berth-data", "storage"); c.Storage.Root != want {
		t.Errorf("storage root = %q, want %q", c.Storage.Root, want)
	}
	if want := filepath.Join("./berth-data", "metadata.db"); c.Metadata.Path != want {
		t.Errorf("metadata path = %q, want %q", c.Metadata.Path, want)
	}
	// Explicit paths are kept.
	c = Default()
	c.Storage.Root, c.Metadata.Path = "/srv/blobs", "/srv/meta.db"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Storage.Root != "/srv/blobs" || c.Metadata.Path != "/srv/meta.db" {
		t.Errorf("explicit paths replaced: %q %q", c.Storage.Root, c.Metadata.Path)
	}
	// The inmemory driver needs nothing.
	c = Default()
	c.Storage.Driver = "inmemory"
	if err := c.Validate(); err != nil {
		t.Errorf("inmemory: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
addr: 0.0.0.0:6000
data: /var/lib/berth
storage:
  driver: inmemory
manifests:
  maxSize: 65536
  requireLayers: true
uploads:
  maxAge: 12h
log:
  level: debug
  format: json
`)
	c := Default()
	if err := c.LoadFile(p); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Addr, want.Data = "0.0.0.0:6000", "/var/lib/berth"
	want.Storage.Driver = "inmemory"
	want.Manifests = Manifests{MaxSize: 65536, RequireLayers: true, CacheBytes: metadata.DefaultCacheBytes}
	want.Uploads.MaxAge = 12 * time.Hour
	want.Log = Log{Level: "debug", Format: "json", Audit: true}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("loaded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("loaded config does not validate: %v", err)
	}
}

func TestLoadFilePartialKeepsDefaults(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"", "# only a comment\n", "---\n", "storage:\n  root: /srv/blobs\n", "log:\n  level: warn\n"} {
		c := Default()
		if err := c.LoadFile(writeFile(t, content)); err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		want := Default()
		switch {
		case strings.Contains(content, "root"):
			want.Storage.Root = "/srv/blobs"
		case strings.Contains(content, "warn"):
			want.Log.Level = "warn"
		}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("%q: loaded %+v, want %+v", content, c, want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", content, err)
		}
	}
}

func TestLoadFileUnknownKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ content, key string }{
		{"adress: 1.2.3.4:5\n", "adress"},
		{"storage:\n  rooot: /x\n", "rooot"},
		{"log:\n  level: info\n  colour: true\n", "colour"},
		{"manifests:\n  max_size: 10\n", "max_size"},
	} {
		c := Default()
		err := c.LoadFile(writeFile(t, tc.content))
		wantErrorContaining(t, err, tc.key)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	wantErrorContaining(t, err, "missing.yaml")

	for _, content := range []string{
		"manifests:\n  maxSize: big\n",
		"manifests:\n  requireLayers: maybe\n",
		"storage: filesystem\n",
		"addr: [1, 2]\n",
		"addr: \"unterminated\n",
		"\t- not yaml: [",
	} {
		c := Default()
		if err := c.LoadFile(writeFile(t, content)); err == nil {
			t.Errorf("%q: no error", content)
		}
	}
}

// TestLoadFileFractionalInt: an integer setting given a fraction must be
// refused, not truncated.
func TestLoadFileFractionalInt(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"auth:\n  loginLimit:\n    burst: 1.5\n", "manifests:\n  maxSize: 4096.9\n"} {
		c := Default()
		if err := c.LoadFile(writeFile(t, content)); err == nil || !strings.Contains(err.Error(), "not a whole number") {
			t.Errorf("%q: %v; loaded burst %d maxSize %d", content, err, c.Auth.LoginLimit.Burst, c.Manifests.MaxSize)
		}
	}
}

func TestValidateBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		mod   func(c *Config)
		parts []string
	}{
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, []string{"addr", "localhost", "HOST:PORT"}},
		{"addr empty", func(c *Config) { c.Addr = "" }, []string{"addr"}},
		{"port too large", func(c *Config) { c.Addr = "127.0.0.1:99999" }, []string{"addr", "99999", "port"}},
		{"port negative", func(c *Config) { c.Addr = "127.0.0.1:-1" }, []string{"addr", "port"}},
		{"port not a number", func(c *Config) { c.Addr = "127.0.0.1:http" }, []string{"addr", "port"}},
		{"port missing", func(c *Config) { c.Addr = "127.0.0.1:" }, []string{"addr", "port"}},
		{"bad host", func(c *Config) { c.Addr = "a b:5000" }, []string{"addr", "host"}},
		{"no data", func(c *Config) { c.Data = "" }, []string{"data"}},
		{"unknown storage driver", func(c *Config) { c.Storage.Driver = "ftp" }, []string{"storage.driver", "ftp", "filesystem", "inmemory", "s3"}},
		{"s3 without bucket", func(c *Config) { c.Storage.Driver = "s3" }, []string{"storage.s3", "bucket"}},
		{"s3 half a key pair", func(c *Config) {
			c.Storage.Driver = "s3"
			c.Storage.Sections = map[string]any{"s3": &s3.Config{Bucket: "b", AccessKey: "k"}}
		}, []string{"storage.s3", "secret key"}},
		{"unknown metadata driver", func(c *Config) { c.Metadata.Driver = "mysql" }, []string{"metadata.driver", "mysql", "sqlite", "postgres"}},
		{"postgres without dsn", func(c *Config) { c.Metadata.Driver = "postgres" }, []string{"metadata.dsn", "required"}},
		{"maxSize too small", func(c *Config) { c.Manifests.MaxSize = 100 }, []string{"manifests.maxSize", "100", "1024"}},
		{"maxSize too large", func(c *Config) { c.Manifests.MaxSize = 1<<30 + 1 }, []string{"manifests.maxSize"}},
		{"maxAge zero", func(c *Config) { c.Uploads.MaxAge = 0 }, []string{"uploads.maxAge 0s: want at least 1h"}},
		{"maxAge short", func(c *Config) { c.Uploads.MaxAge = 59 * time.Minute }, []string{"uploads.maxAge 59m0s"}},
		{"bad log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level", "verbose", "debug"}},
		{"bad log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format", "xml", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			wantErrorContaining(t, err, tc.parts...)
			if n := errorCount(err); n != 1 {
				t.Errorf("%d errors, want 1: %v", n, err)
			}
		})
	}
	// Edge values that are valid.
	for _, addr := range []string{":5000", "0.0.0.0:0", "[::1]:65535", "localhost:443", "registry.example.com:5000"} {
		c := Default()
		c.Addr = addr
		if err := c.Validate(); err != nil {
			t.Errorf("addr %q: %v", addr, err)
		}
	}
	for _, size := range []int64{1024, 1 << 30} {
		c := Default()
		c.Manifests.MaxSize = size
		if err := c.Validate(); err != nil {
			t.Errorf("maxSize %d: %v", size, err)
		}
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Addr = "nohostport"
	c.Storage.Driver = "s3"
	c.Manifests.MaxSize = 10
	c.Log.Level = "loud"
	c.Log.Format = "xml"
	err := c.Validate()
	wantErrorContaining(t, err, "nohostport", "s3", "manifests.maxSize", "loud", "xml")
	if n := errorCount(err); n != 5 {
		t.Errorf("%d errors, want 5: %v", n, err)
	}
}

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.ApplyEnv([]string{
		"PATH=/usr/bin",
		"HOME=/root",
		"BERTHX=ignored",
		"BERTH_ADDR=0.0.0.0:7000",
		"BERTH_DATA=/data=with=equals",
		"BERTH_STORAGE_DRIVER=inmemory",
		"BERTH_METADATA_PATH=/m.db",
		"BERTH_MANIFESTS_MAXSIZE=2048",
		"BERTH_MANIFESTS_REQUIRELAYERS=true",
		"BERTH_UPLOADS_MAXAGE=3h",
		"BERTH_LOG_LEVEL=error",
		"BERTH_LOG_FORMAT=json",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Addr, want.Data = "0.0.0.0:7000", "/data=with=equals"
	want.Storage.Driver = "inmemory"
	want.Metadata.Path = "/m.db"
	want.Manifests = Manifests{MaxSize: 2048, RequireLayers: true, CacheBytes: metadata.DefaultCacheBytes}
	want.Uploads.MaxAge = 3 * time.Hour
	want.Log = Log{Level: "error", Format: "json", Audit: true}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("after env %+v, want %+v", c, want)
	}

	// Booleans in the forms strconv accepts, and back to false.
	for _, v := range []string{"1", "t", "TRUE", "True"} {
		c := Default()
		if err := c.ApplyEnv([]string{"BERTH_MANIFESTS_REQUIRELAYERS=" + v}); err != nil || !c.Manifests.RequireLayers {
			t.Errorf("%q: err %v, requireLayers %v", v, err, c.Manifests.RequireLayers)
		}
	}
	c = Default()
	c.Manifests.RequireLayers = true
	if err := c.ApplyEnv([]string{"BERTH_MANIFESTS_REQUIRELAYERS=false"}); err != nil || c.Manifests.RequireLayers {
		t.Errorf("false: err %v, requireLayers %v", err, c.Manifests.RequireLayers)
	}
	// An empty string is a value.
	c = Default()
	if err := c.ApplyEnv([]string{"BERTH_LOG_LEVEL="}); err != nil || c.Log.Level != "" {
		t.Errorf("empty value: err %v, level %q", err, c.Log.Level)
	}
}

func TestApplyEnvErrors(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.ApplyEnv([]string{"BERTH_ADRESS=1.2.3.4:5"})
	wantErrorContaining(t, err, "BERTH_ADRESS", "BERTH_ADDR")
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("config changed by an unknown variable: %+v", c)
	}

	for _, tc := range []struct {
		kv    string
		parts []string
	}{
		{"BERTH_MANIFESTS_MAXSIZE=big", []string{"BERTH_MANIFESTS_MAXSIZE", "big", "integer"}},
		{"BERTH_MANIFESTS_MAXSIZE=1.5", []string{"BERTH_MANIFESTS_MAXSIZE", "integer"}},
		{"BERTH_UPLOADS_MAXAGE=", []string{"BERTH_UPLOADS_MAXAGE", "duration"}},
		{"BERTH_AUTH_LOGINLIMIT_BURST=", []string{"BERTH_AUTH_LOGINLIMIT_BURST", "integer"}},
		{"BERTH_MANIFESTS_REQUIRELAYERS=maybe", []string{"BERTH_MANIFESTS_REQUIRELAYERS", "maybe", "boolean"}},
		{"BERTH_=x", []string{"BERTH_"}},
		{"BERTH_STORAGE=x", []string{"BERTH_STORAGE"}},
		{"BERTH_addr=x", []string{"BERTH_addr"}},
	} {
		c := Default()
		err := c.ApplyEnv([]string{tc.kv})
		wantErrorContaining(t, err, tc.parts...)
	}

	// Every problem is reported, and good variables still apply.
	c = Default()
	err = c.ApplyEnv([]string{"BERTH_NOPE=1", "BERTH_MANIFESTS_MAXSIZE=x", "BERTH_LOG_LEVEL=debug", "BERTH_UPLOADS_MAXAGE=y"})
	wantErrorContaining(t, err, "BERTH_NOPE", "BERTH_MANIFESTS_MAXSIZE", "BERTH_UPLOADS_MAXAGE")
	if n := errorCount(err); n != 3 {
		t.Errorf("%d errors, want 3: %v", n, err)
	}
	if c.Log.Level != "debug" {
		t.Errorf("good variable not applied: level %q", c.Log.Level)
	}

	// Ignored names are not errors.
	c = Default()
	if err := c.ApplyEnv([]string{"BERTH_CONFIG=/etc/berth.yaml"}, "BERTH_CONFIG"); err != nil {
		t.Errorf("ignored variable: %v", err)
	}
	if err := c.ApplyEnv([]string{"BERTH_CONFIG=/etc/berth.yaml"}); err == nil {
		t.Error("BERTH_CONFIG accepted when not ignored")
	}
}

func TestPrecedenceFileThenEnv(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "addr: 10.0.0.1:5000\ndata: /from/file\nlog:\n  level: debug\nmanifests:\n  maxSize: 4096\n")
	c := Default()
	if err := c.LoadFile(p); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv([]string{"BERTH_ADDR=10.0.0.2:6000", "BERTH_MANIFESTS_MAXSIZE=8192"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "10.0.0.2:6000" || c.Manifests.MaxSize != 8192 {
		t.Errorf("environment did not override the file: addr %q maxSize %d", c.Addr, c.Manifests.MaxSize)
	}
	if c.Data != "/from/file" || c.Log.Level != "debug" {
		t.Errorf("file values lost: data %q level %q", c.Data, c.Log.Level)
	}
	if c.Log.Format != "text" || c.Uploads.MaxAge != 168*time.Hour {
		t.Errorf("defaults lost: %+v", c)
	}
	if want := filepath.Join("/from/file", "storage"); c.Storage.Root != want {
		t.Errorf("storage root = %q, want %q", c.Storage.Root, want)
	}
}

// TestEveryFieldHasAnEnvVariable guards the reflection that maps keys to
// variables: each leaf setting must be reachable.
func TestEveryFieldHasAnEnvVariable(t *testing.T) {
	t.Parallel()
	// Each value equals no default, so every variable changes something.
	for name, v := range map[string]string{
		"BERTH_ADDR": "1", "BERTH_DATA": "1", "BERTH_STORAGE_DRIVER": "1", "BERTH_STORAGE_ROOT": "1",
		"BERTH_METADATA_DRIVER": "1", "BERTH_METADATA_PATH": "1", "BERTH_MANIFESTS_MAXSIZE": "1",
		"BERTH_MANIFESTS_REQUIRELAYERS": "1", "BERTH_LOG_LEVEL": "1", "BERTH_LOG_FORMAT": "1",
		"BERTH_UPLOADS_MAXAGE": "1s", "BERTH_GC_INTERVAL": "1s", "BERTH_GC_GRACE": "1s",
		"BERTH_AUTH_TOKEN_TTL": "1s", "BERTH_AUTH_TOKEN_REFRESHTTL": "1s", "BERTH_AUTH_TOKEN_LEEWAY": "1s",
		"BERTH_STORAGE_S3_REDIRECTEXPIRY": "1s",
	} {
		c := Default()
		if err := c.ApplyEnv([]string{name + "=" + v}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if reflect.DeepEqual(c, Default()) {
			t.Errorf("%s=%s changed nothing", name, v)
		}
	}
}

// TestDurations checks settings written as Go durations: in the file and the environment they
// take a unit; a bare number (which the YAML decoder would read as nanoseconds) is refused.
func TestDurations(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.LoadFile(writeFile(t, "server:\n  bodyIdleTimeout: 90s\n")); err != nil {
		t.Fatal(err)
	}
	if c.Server.BodyIdleTimeout != 90*time.Second {
		t.Errorf("bodyIdleTimeout = %v, want 90s", c.Server.BodyIdleTimeout)
	}
	for _, content := range []string{"server:\n  bodyIdleTimeout: 90\n", "server:\n  bodyIdleTimeout: 1.5\n", "server:\n  bodyIdleTimeout: soon\n"} {
		c := Default()
		if err := c.LoadFile(writeFile(t, content)); err == nil {
			t.Errorf("%q: no error; loaded %v", content, c.Server.BodyIdleTimeout)
		}
	}
	c = Default()
	if err := c.ApplyEnv([]string{"BERTH_SERVER_BODYIDLETIMEOUT=2m"}); err != nil || c.Server.BodyIdleTimeout != 2*time.Minute {
		t.Errorf("BERTH_SERVER_BODYIDLETIMEOUT=2m: %v, %v", err, c.Server.BodyIdleTimeout)
	}
	if err := c.ApplyEnv([]string{"BERTH_SERVER_BODYIDLETIMEOUT=120"}); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("BERTH_SERVER_BODYIDLETIMEOUT=120: %v", err)
	}
	c = Default()
	c.Server.BodyIdleTimeout = 0
	wantErrorContaining(t, c.Validate(), "server.bodyIdleTimeout")
}

// TestDurationKeys loads every duration setting from a file and checks
// the values, the "unset" and "0" of the cache TTLs included.
func TestDurationKeys(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.LoadFile(writeFile(t, `
uploads: {maxAge: 36h}
storage:
  s3: {redirectExpiry: 5m}
gc: {interval: 0s, grace: 90m}
retention:
  - repositories: ["**"]
    untaggedAfter: 72h
auth:
  token: {ttl: 90s, refreshTTL: 48h, leeway: 10s}
registries:
  - name: hub
    type: cache
    prefix: hub/
    upstream: {url: "https://registry-1.docker.io", timeout: 30s}
    tagTTL: 0s
    notFoundTTL: 1m
    probeInterval: 15s
`))
	if err != nil {
		t.Fatal(err)
	}
	s3cfg, _ := c.Storage.Sections["s3"].(*s3.Config)
	if s3cfg == nil {
		t.Fatalf("no s3 section: %+v", c.Storage.Sections)
	}
	if c.Uploads.MaxAge != 36*time.Hour || s3cfg.RedirectExpiry != 5*time.Minute ||
		s3cfg.Options().RedirectExpiry != 5*time.Minute || c.GC.Interval != 0 || c.GC.Grace != 90*time.Minute ||
		c.Retention[0].UntaggedAfter != 72*time.Hour || c.Auth.Token.TTL != 90*time.Second ||
		c.Auth.Token.RefreshTTL != 48*time.Hour || c.Auth.Token.Leeway != 10*time.Second {
		t.Errorf("durations: %+v", c)
	}
	hub := c.Registries[0]
	if hub.Upstream.Timeout != 30*time.Second || hub.TagTTL == nil || *hub.TagTTL != 0 || hub.NotFoundTTL == nil ||
		*hub.NotFoundTTL != time.Minute || hub.CatalogTTL != nil || hub.ProbeInterval != 15*time.Second {
		t.Errorf("registry durations: %+v", hub)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// A bare number is refused wherever a duration is, in lists too.
	for _, tc := range []struct{ content, want string }{
		{"uploads: {maxAge: 168}\n", `uploads.maxAge: "168" needs a unit`},
		{"gc: {grace: 1.5}\n", `gc.grace: "1.5" needs a unit`},
		{"retention: [{repositories: [a], untaggedAfter: 3}]\n", `retention[0].untaggedAfter: "3" needs a unit`},
		{"registries: [{name: c, type: cache, upstream: {url: 'https://x', timeout: 10}}]\n", `registries[0].upstream.timeout: "10" needs a unit`},
		{"registries: [{name: c, type: cache, tagTTL: 0}]\n", `registries[0].tagTTL: "0" needs a unit: write 0s`},
		{"gc: {interval: 0}\n", `gc.interval: "0" needs a unit: write 0s`},
		{"auth: {token: {ttl: 5 minutes}}\n", `line 1: auth.token.ttl: "5 minutes" is not a duration (write it like 90s, 5m or 24h)`},
		{"registries: [{name: c, notFoundTTL: soon}]\n", `registries[0].notFoundTTL: "soon" is not a duration`},
	} {
		c := Default()
		wantErrorContaining(t, c.LoadFile(writeFile(t, tc.content)), tc.want)
	}
}

// TestRenamedKeys: the integer keys the durations replaced are refused,
// naming the new key with the old value in its form.
func TestRenamedKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ content, want string }{
		{"uploads:\n  maxAgeHours: 12\n", "line 2: uploads.maxAgeHours was renamed: write uploads.maxAge: 12h"},
		{"storage:\n  s3:\n    redirectExpirySeconds: 1200\n", "storage.s3.redirectExpirySeconds was renamed: write storage.s3.redirectExpiry: 20m"},
		{"gc:\n  intervalHours: 24\n", "line 2: gc.intervalHours was renamed: write gc.interval: 24h"},
		{"gc:\n  intervalHours: 0\n", "write gc.interval: 0h"},
		{"gc:\n  graceHours: 6\n", "gc.graceHours was renamed: write gc.grace: 6h"},
		{"retention:\n  - repositories: [a]\n    untaggedAfterHours: 72\n", "line 3: retention[0].untaggedAfterHours was renamed: write retention[0].untaggedAfter: 72h"},
		{"auth:\n  token:\n    ttlSeconds: 300\n", "auth.token.ttlSeconds was renamed: write auth.token.ttl: 5m"},
		{"auth:\n  token:\n    ttlSeconds: 90\n", "write auth.token.ttl: 90s"},
		{"auth:\n  token:\n    refreshHours: 720\n", "auth.token.refreshHours was renamed: write auth.token.refreshTTL: 720h"},
		{"auth:\n  token:\n    leewaySeconds: 30\n", "auth.token.leewaySeconds was renamed: write auth.token.leeway: 30s"},
		{"registries:\n  - name: a\n    tagTTLSeconds: 0\n", "line 3: registries[0].tagTTLSeconds was renamed: write registries[0].tagTTL: 0s"},
		{"registries:\n  - name: a\n  - name: b\n    notFoundTTLSeconds: 45\n", "registries[1].notFoundTTLSeconds was renamed: write registries[1].notFoundTTL: 45s"},
		{"registries:\n  - catalogTTLSeconds: 3600\n", "write registries[0].catalogTTL: 1h"},
		{"registries:\n  - probeIntervalSeconds: 30\n", "write registries[0].probeInterval: 30s"},
		{"registries:\n  - upstream:\n      timeoutSeconds: 10\n", "registries[0].upstream.timeoutSeconds was renamed: write registries[0].upstream.timeout: 10s"},
		// A value that is not a whole number gets the example.
		{"gc:\n  graceHours: soon\n", "write gc.grace: 24h"},
		{"auth:\n  token:\n    ttlSeconds: -5\n", "write auth.token.ttl: 5m"},
	} {
		c := Default()
		err := c.LoadFile(writeFile(t, tc.content))
		wantErrorContaining(t, err, tc.want)
		if n := errorCount(errors.Unwrap(err)); n != 1 {
			t.Errorf("%q: %d errors, want 1: %v", tc.content, n, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("%q: the refused file changed the configuration", tc.content)
		}
	}

	for _, tc := range []struct{ kv, want string }{
		{"BERTH_UPLOADS_MAXAGEHOURS=12", "environment variable BERTH_UPLOADS_MAXAGEHOURS was renamed: set BERTH_UPLOADS_MAXAGE=12h"},
		{"BERTH_GC_INTERVALHOURS=24", "environment variable BERTH_GC_INTERVALHOURS was renamed: set BERTH_GC_INTERVAL=24h"},
		{"BERTH_GC_GRACEHOURS=x", "BERTH_GC_GRACEHOURS was renamed: set BERTH_GC_GRACE=24h"},
		{"BERTH_AUTH_TOKEN_TTLSECONDS=600", "set BERTH_AUTH_TOKEN_TTL=10m"},
		{"BERTH_AUTH_TOKEN_REFRESHHOURS=1", "set BERTH_AUTH_TOKEN_REFRESHTTL=1h"},
		{"BERTH_AUTH_TOKEN_LEEWAYSECONDS=61", "set BERTH_AUTH_TOKEN_LEEWAY=61s"},
		{"BERTH_STORAGE_S3_REDIRECTEXPIRYSECONDS=120", "set BERTH_STORAGE_S3_REDIRECTEXPIRY=2m"},
	} {
		c := Default()
		err := c.ApplyEnv([]string{tc.kv})
		wantErrorContaining(t, err, tc.want)
		if errorCount(err) != 1 || !reflect.DeepEqual(c, Default()) {
			t.Errorf("%s: %v; config changed: %v", tc.kv, err, !reflect.DeepEqual(c, Default()))
		}
	}
}

// TestUnknownKeys: an unknown key, at any level, is named with its line
// and path, with the nearest known key when one is close and the keys
// known there otherwise.
func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		content string
		want    []string
		not     string
	}{
		{"addres: 1.2.3.4:5\n", []string{"line 1: addres names no setting; did you mean addr?"}, ""},
		{"adress: 1.2.3.4:5\n", []string{"line 1: adress names no setting (known here: addr, auth,"}, "did you mean"},
		{"storage:\n  rooot: /x\n", []string{"line 2: storage.rooot names no setting or registered storage driver; did you mean storage.root?"}, ""},
		{"storage:\n  s3:\n    bukcet: b\n", []string{"storage.s3.bukcet names no setting of the s3 storage driver; did you mean storage.s3.bucket?"}, ""},
		{"manifests:\n  max_size: 10\n", []string{"manifests.max_size names no setting; did you mean manifests.maxSize?"}, ""},
		{"manifests:\n  MaxSize: 10\n", []string{"did you mean manifests.maxSize?"}, ""},
		{"log:\n  level: info\n  colour: true\n", []string{"line 3: log.colour names no setting (known in log: audit, format, level)"}, "did you mean"},
		{"nonsense: 1\n", []string{"nonsense names no setting (known here: addr, auth, data, debug, gc,"}, "did you mean"},
		{"gc:\n  intervall: 1h\n", []string{"gc.intervall names no setting; did you mean gc.interval?"}, ""},
		{"retention:\n  - repository: [a]\n", []string{"line 2: retention[0].repository names no setting; did you mean retention[0].repositories?"}, ""},
		{"retention:\n  - repositories: [a]\n    keeplast: 3\n", []string{"retention[0].keeplast names no setting; did you mean retention[0].keepLast?"}, ""},
		{"auth:\n  rules:\n    - user: [a]\n", []string{"auth.rules[0].user names no setting; did you mean auth.rules[0].users?"}, ""},
		{"auth:\n  token:\n    tll: 5m\n", []string{"auth.token.tll names no setting; did you mean auth.token.ttl?"}, ""},
		{"auth:\n  loginLimit:\n    perminute: 3\n", []string{"did you mean auth.loginLimit.perMinute?"}, ""},
		{"registries:\n  - name: a\n    prefx: a/\n", []string{"line 3: registries[0].prefx names no setting; did you mean registries[0].prefix?"}, ""},
		{"registries:\n  - name: a\n    upstream:\n      urll: https://x\n", []string{"registries[0].upstream.urll names no setting; did you mean registries[0].upstream.url?"}, ""},
		{"registries:\n  - name: a\n    tagTtl: 1m\n", []string{"did you mean registries[0].tagTTL?"}, ""},
		{"registries:\n  - name: a\n    members: [b]\n    upstreams: {}\n", []string{"did you mean registries[0].upstream?"}, ""},
		{"tls:\n  clientCa: ca.pem\n", []string{"did you mean tls.clientCA?"}, ""},
		// Every problem at once.
		{"adress: x\nlog:\n  levl: info\n", []string{"line 1: adress", "line 3: log.levl names no setting; did you mean log.level?"}, ""},
	} {
		c := Default()
		err := c.LoadFile(writeFile(t, tc.content))
		wantErrorContaining(t, err, tc.want...)
		if err != nil && tc.not != "" && strings.Contains(err.Error(), tc.not) {
			t.Errorf("%q: %v: contains %q", tc.content, err, tc.not)
		}
	}

	// Keys brought in by aliases and merge keys are checked too; an alias
	// that contains itself ends the walk.
	c := Default()
	err := c.LoadFile(writeFile(t, `
registries:
  - &cache
    name: a
    type: cache
    upstream: {url: "https://x"}
    tagTTLSeconds: 30
  - <<: *cache
    name: b
`))
	wantErrorContaining(t, err, "line 7: registries[0].tagTTLSeconds was renamed", "registries[1].tagTTLSeconds was renamed")
	c = Default()
	if err := c.LoadFile(writeFile(t, "auth:\n  groups: &g\n    a: *g\n")); err == nil {
		t.Error("a recursive alias was accepted")
	}
}

func TestUnknownEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kv   string
		want string
	}{
		{"BERTH_ADDRES=1.2.3.4:5", "environment variable BERTH_ADDRES names no setting; did you mean BERTH_ADDR?"},
		{"BERTH_REGISTRY=x", "did you mean BERTH_REGISTRIES?"},
		{"BERTH_STORAGE_ROOOT=/x", "did you mean BERTH_STORAGE_ROOT?"},
		{"BERTH_STORAGE_S3_BUKCET=b", "did you mean BERTH_STORAGE_S3_BUCKET?"},
		{"BERTH_GC_INTERVALL=1h", "did you mean BERTH_GC_INTERVAL?"},
		{"BERTH_AUTH_TOKEN_TLL=5m", "did you mean BERTH_AUTH_TOKEN_TTL?"},
		{"BERTH_LOG_COLOUR=1", "environment variable BERTH_LOG_COLOUR names no setting (known: BERTH_ADDR, "},
		{"BERTH_NOPE=1", "names no setting (known: "},
	} {
		c := Default()
		err := c.ApplyEnv([]string{tc.kv})
		wantErrorContaining(t, err, tc.want)
		if strings.Contains(tc.want, "known") && strings.Contains(err.Error(), "did you mean") {
			t.Errorf("%s: %v: a far key suggested", tc.kv, err)
		}
	}
}

func TestNearest(t *testing.T) {
	t.Parallel()
	keys := []string{"addr", "data", "storage", "metadata", "manifests", "uploads", "server", "log", "gc", "retention", "auth", "tls", "registries"}
	for _, tc := range []struct {
		s, want string // want "": no suggestion
	}{
		{"addres", "addr"},
		{"adress", ""},
		{"addr", "addr"},
		{"ADDR", "addr"},
		{"storgae", "storage"},
		{"metdata", "metadata"},
		{"registry", "registries"},
		{"registires", "registries"},
		{"retension", "retention"},
		{"logs", "log"},
		{"lgo", "log"},
		{"tsl", "tls"},
		{"x", ""},
		{"gcc", "gc"},
		{"ga", "gc"},
		{"zz", ""},
		{"nonsense", ""},
		{"colour", ""},
		{"", ""},
	} {
		got, ok := nearest(tc.s, keys)
		if !ok {
			got = ""
		}
		if got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
	if _, ok := nearest("x", nil); ok {
		t.Error("a suggestion from no candidates")
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"abc", "abc", 0},
		{"abc", "abd", 1},
		{"abc", "acb", 1},
		{"abcd", "badc", 2},
		{"kitten", "sitting", 3},
		{"maxsize", "max_size", 1},
		{"ca", "abc", 3},
	} {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := distance(tc.b, tc.a); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

// FuzzCheckDocument: whatever a config file holds, checking it ends with
// a list of problems or none, never a panic or a hang (aliases included).
func FuzzCheckDocument(f *testing.F) {
	for _, s := range []string{
		"addr: 127.0.0.1:5000\n",
		"gc: {intervalHours: 24, grace: 1h}\n",
		"registries: [{name: a, tagTTLSeconds: 3, upstream: {timeoutSeconds: 1}}]\n",
		"retention: [&r {repositories: [a]}, {<<: *r, untaggedAfter: 3}]\n",
		"auth:\n  groups: &g\n    a: *g\n",
		"a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b]\n",
		"storage:\n  rooot: 1.5\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(content), &doc) != nil {
			return
		}
		_ = checkDocument(&doc, reflect.TypeFor[*Config]())
	})
}
