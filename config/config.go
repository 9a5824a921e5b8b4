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

	"gopkg.in/yaml.v3"
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
	Log       Log       `yaml:"log"`
}

// Storage selects the blob storage driver.
type Storage struct {
	// Driver is "filesystem" (default) or "inmemory".
	Driver string `yaml:"driver"`
	// Root is the filesystem driver's directory; default DATA/storage.
	Root string `yaml:"root"`
}

// Metadata selects the metadata store.
type Metadata struct {
	// Driver is "sqlite" (default).
	Driver string `yaml:"driver"`
	// Path is the SQLite database file; default DATA/metadata.db.
	Path string `yaml:"path"`
}

// Manifests tunes manifest validation.
type Manifests struct {
	// MaxSize is the largest manifest accepted, in bytes.
	MaxSize int64 `yaml:"maxSize"`
	// RequireLayers rejects image manifests whose layers are not all in the
	// repository (sparse manifests are accepted by default).
	RequireLayers bool `yaml:"requireLayers"`
}

// Uploads tunes upload sessions.
type Uploads struct {
	// MaxAgeHours is how long an untouched upload session is kept.
	MaxAgeHours int `yaml:"maxAgeHours"`
}

// Log tunes logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Default returns the zero-configuration defaults.
func Default() Config {
	return Config{
		Addr:      "127.0.0.1:5000",
		Data:      "./berth-data",
		Storage:   Storage{Driver: "filesystem"},
		Metadata:  Metadata{Driver: "sqlite"},
		Manifests: Manifests{MaxSize: 4 << 20},
		Uploads:   Uploads{MaxAgeHours: 168},
		Log:       Log{Level: "info", Format: "text"},
	}
}

// LoadFile decodes a YAML file over c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
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
	var errs []error
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || contains(ignore, k) {
			continue
		}
		f, ok := keys[k]
		if !ok {
			errs = append(errs, fmt.Errorf("environment variable %s names no setting (known: %s)", k, strings.Join(sortedKeys(keys), ", ")))
			continue
		}
		if err := setField(f, v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s: %w", k, err))
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

func setField(f reflect.Value, s string) error {
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
	switch c.Storage.Driver {
	case "filesystem":
		if c.Storage.Root == "" {
			c.Storage.Root = filepath.Join(c.Data, "storage")
		}
	case "inmemory":
	default:
		bad("storage.driver %q: want filesystem or inmemory", c.Storage.Driver)
	}
	switch c.Metadata.Driver {
	case "sqlite":
		if c.Metadata.Path == "" {
			c.Metadata.Path = filepath.Join(c.Data, "metadata.db")
		}
	default:
		bad("metadata.driver %q: want sqlite", c.Metadata.Driver)
	}
	if c.Manifests.MaxSize < 1024 || c.Manifests.MaxSize > 1<<30 {
		bad("manifests.maxSize %d: want from 1024 to 1073741824 bytes", c.Manifests.MaxSize)
	}
	if c.Uploads.MaxAgeHours < 1 {
		bad("uploads.maxAgeHours %d: want at least 1", c.Uploads.MaxAgeHours)
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
	return errors.Join(errs...)
}
