package config

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
)

// Storage selects the blob storage driver. Besides driver and root, each
// key of the section names a registered driver (storage.Register) and
// holds its own settings, such as storage.s3.bucket.
type Storage struct {
	// Driver is the name of a registered driver: filesystem (default),
	// inmemory, s3, gcs, azure, or one a custom build registered.
	Driver string `yaml:"driver"`
	// Root is the directory of drivers that keep files on this machine
	// (filesystem); default DATA/storage.
	Root string `yaml:"root"`
	// Sections holds the drivers' sections by driver name, each decoded
	// into the configuration type its driver registered. Only sections
	// the file or the environment set are present until Validate adds
	// the selected driver's.
	Sections map[string]any `yaml:"-"`
}

// Metadata selects the metadata store. Besides driver, path and dsn, each
// key of the section names a registered store (metadata.Register) and
// holds its own settings.
type Metadata struct {
	// Driver is the name of a registered store: sqlite (default),
	// postgres, or one a custom build registered.
	Driver string `yaml:"driver"`
	// Path is the database file of stores that keep one on this machine
	// (sqlite); default DATA/metadata.db.
	Path string `yaml:"path"`
	// DSN is the connection string of stores that talk to a server
	// (postgres: a postgres:// URL or key=value pairs). It holds the
	// password: it is never logged.
	DSN string `yaml:"dsn"`
	// Sections holds the stores' sections by name, as Storage.Sections.
	Sections map[string]any `yaml:"-"`
}

// pluginKind is what the configuration needs to know of one kind of
// registered backend.
type pluginKind struct {
	key      string   // the configuration section: "storage"
	kind     string   // for messages: "storage driver"
	settings []string // the section's own keys
	names    func() []string
	config   func(name string) (any, bool) // a new configuration of name
}

var (
	storageKind = pluginKind{
		key: "storage", kind: "storage driver", settings: []string{"driver", "root"},
		names: storage.Drivers,
		config: func(name string) (any, bool) {
			r, ok := storage.LookupDriver(name)
			if !ok {
				return nil, false
			}
			return r.NewConfig(), true
		},
	}
	metadataKind = pluginKind{
		key: "metadata", kind: "metadata store", settings: []string{"driver", "path", "dsn"},
		names: metadata.Stores,
		config: func(name string) (any, bool) {
			r, ok := metadata.LookupStore(name)
			if !ok {
				return nil, false
			}
			return r.NewConfig(), true
		},
	}
)

// UnmarshalYAML decodes the storage section: its own settings, and each
// driver's section strictly into that driver's configuration type.
func (s *Storage) UnmarshalYAML(n *yaml.Node) error {
	return storageKind.decode(n, map[string]*string{"driver": &s.Driver, "root": &s.Root}, &s.Sections)
}

// UnmarshalYAML decodes the metadata section like Storage's.
func (m *Metadata) UnmarshalYAML(n *yaml.Node) error {
	return metadataKind.decode(n, map[string]*string{"driver": &m.Driver, "path": &m.Path, "dsn": &m.DSN}, &m.Sections)
}

// decode reads mapping n: keys in own are strings of the section, other
// keys must name registered backends, whose sections are decoded into
// their configuration (existing values are kept where n says nothing).
func (k pluginKind) decode(n *yaml.Node, own map[string]*string, sections *map[string]any) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping of settings, such as driver: ...", n.Line, k.key)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name := kn.Value
		if seen[name] {
			return fmt.Errorf("line %d: %s.%s: set twice", kn.Line, k.key, name)
		}
		seen[name] = true
		if p, ok := own[name]; ok {
			if err := vn.Decode(p); err != nil {
				return fmt.Errorf("%s.%s: %w", k.key, name, err)
			}
			continue
		}
		cfg, ok := (*sections)[name]
		if !ok {
			if cfg, ok = k.config(name); !ok {
				if s, close := nearest(name, append(append([]string{}, k.settings...), k.names()...)); close {
					return fmt.Errorf("line %d: %s.%s names no setting or registered %s; did you mean %s.%s?", kn.Line, k.key, name, k.kind, k.key, s)
				}
				return fmt.Errorf("line %d: %s.%s: neither a setting (%s) nor a registered %s (%s)",
					kn.Line, k.key, name, strings.Join(k.settings, ", "), k.kind, strings.Join(k.names(), ", "))
			}
		}
		path := k.key + "." + name
		if err := decodeStrict(vn, cfg, path, fmt.Sprintf("the %s %s", name, k.kind)); err != nil {
			return err
		}
		if *sections == nil {
			*sections = map[string]any{}
		}
		(*sections)[name] = cfg
	}
	return nil
}

// decodeStrict decodes n into the struct cfg points to, refusing keys the
// struct does not have (who names its owner in the message), renamed
// keys, fractions for integers and durations without a unit.
func decodeStrict(n *yaml.Node, cfg any, path, who string) error {
	t := reflect.TypeOf(cfg)
	if err := checkKeys(n, t, path, who); err != nil {
		return err
	}
	c := &checker{aliases: map[*yaml.Node]bool{}}
	c.walk(n, t, path)
	if err := errors.Join(c.problems...); err != nil {
		return err
	}
	if err := n.Decode(cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// checkKeys walks n alongside type t and reports the first key that t has
// no field for, with the keys it does have.
func checkKeys(n *yaml.Node, t reflect.Type, path, who string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case t == durationType && n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		return fmt.Errorf("line %d: %s: %q has no unit (write e.g. %ss or %sm)", n.Line, path, n.Value, n.Value, n.Value)
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fieldByYAMLName(t, key)
			if r, renamed := findRename(t, key); !ok && renamed {
				val := r.example
				if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
					val = r.value(v.Value)
				}
				return fmt.Errorf("line %d: %s was renamed: write %s: %s", n.Content[i].Line, join(path, key), join(path, r.new), val)
			}
			if !ok {
				known := yamlNames(t)
				if s, close := nearest(key, known); close {
					return fmt.Errorf("line %d: %s names no setting of %s; did you mean %s?", n.Content[i].Line, join(path, key), who, join(path, s))
				}
				list := "it has no settings"
				if len(known) > 0 {
					list = "known: " + strings.Join(known, ", ")
				}
				return fmt.Errorf("line %d: %s names no setting of %s (%s)", n.Content[i].Line, join(path, key), who, list)
			}
			if err := checkKeys(n.Content[i+1], f.Type, join(path, key), who); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Struct && n.Kind != yaml.MappingNode && n.Tag != "!!null":
		return fmt.Errorf("line %d: %s: want a mapping of the settings of %s", n.Line, path, who)
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), who); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), who); err != nil {
				return err
			}
		}
	}
	return nil
}

// envSections adds to keys the environment variables of every registered
// backend's section: PREFIX_NAME_KEY, such as BERTH_STORAGE_GCS_BUCKET.
// A section the file did not set is made when one of its variables is
// applied: adopt[variable] stores it.
func (k pluginKind) envSections(sections *map[string]any, keys map[string]reflect.Value, adopt map[string]func()) {
	prefix := EnvPrefix + strings.ToUpper(k.key) + "_"
	for _, name := range k.names() {
		cfg, existing := (*sections)[name]
		if !existing {
			var ok bool
			if cfg, ok = k.config(name); !ok {
				continue
			}
		}
		sub := map[string]reflect.Value{}
		envKeys(reflect.ValueOf(cfg).Elem(), prefix+strings.ToUpper(name)+"_", sub)
		for key, v := range sub {
			keys[key] = v
			if !existing {
				adopt[key] = func() {
					if *sections == nil {
						*sections = map[string]any{}
					}
					(*sections)[name] = cfg
				}
			}
		}
	}
}

// section returns name's section, adding a zero one if there is none.
func section(sections *map[string]any, name string, newConfig func() any) any {
	if cfg, ok := (*sections)[name]; ok {
		return cfg
	}
	cfg := newConfig()
	if *sections == nil {
		*sections = map[string]any{}
	}
	(*sections)[name] = cfg
	return cfg
}

// StorageEnv is what the storage driver is handed besides its section.
func (c *Config) StorageEnv() storage.Env {
	return storage.Env{Data: c.Data, Root: c.Storage.Root}
}

// MetadataEnv is what the metadata store is handed besides its section.
func (c *Config) MetadataEnv() metadata.Env {
	return metadata.Env{Data: c.Data, Path: c.Metadata.Path, DSN: c.Metadata.DSN}
}

// validateBackends checks that the selected driver and store are
// registered and that their sections are valid.
func (c *Config) validateBackends(bad func(string, ...any)) {
	if c.Storage.Root == "" {
		c.Storage.Root = filepath.Join(c.Data, "storage")
	}
	if c.Metadata.Path == "" {
		c.Metadata.Path = filepath.Join(c.Data, "metadata.db")
	}
	if r, ok := storage.LookupDriver(c.Storage.Driver); !ok {
		bad("storage.driver %q: no such driver (registered: %s)", c.Storage.Driver, strings.Join(storage.Drivers(), ", "))
	} else if err := r.Check(section(&c.Storage.Sections, c.Storage.Driver, r.NewConfig), c.StorageEnv()); err != nil {
		bad("storage.%s: %v", c.Storage.Driver, err)
	}
	if r, ok := metadata.LookupStore(c.Metadata.Driver); !ok {
		bad("metadata.driver %q: no such store (registered: %s)", c.Metadata.Driver, strings.Join(metadata.Stores(), ", "))
	} else if err := r.Check(section(&c.Metadata.Sections, c.Metadata.Driver, r.NewConfig), c.MetadataEnv()); err != nil {
		bad("metadata.%s: %v", c.Metadata.Driver, err)
	}
}

// errNotValidated is returned by the Open methods on a configuration
// whose backend was never checked.
var errNotValidated = errors.New("configuration not validated")

// OpenStorage opens the configured storage driver. c must have passed
// Validate; ctx bounds contacting the backend.
func (c *Config) OpenStorage(ctx context.Context) (driver.Driver, error) {
	r, ok := storage.LookupDriver(c.Storage.Driver)
	cfg, has := c.Storage.Sections[c.Storage.Driver]
	if !ok || !has {
		return nil, fmt.Errorf("storage.driver %q: %w", c.Storage.Driver, errNotValidated)
	}
	return r.Open(ctx, cfg, c.StorageEnv())
}

// OpenMetadata opens the configured metadata store, its schema brought up
// to date. c must have passed Validate; ctx bounds connecting.
func (c *Config) OpenMetadata(ctx context.Context) (metadata.Store, error) {
	r, ok := metadata.LookupStore(c.Metadata.Driver)
	cfg, has := c.Metadata.Sections[c.Metadata.Driver]
	if !ok || !has {
		return nil, fmt.Errorf("metadata.driver %q: %w", c.Metadata.Driver, errNotValidated)
	}
	return r.Open(ctx, cfg, c.MetadataEnv())
}
