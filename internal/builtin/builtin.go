// Package builtin registers berth's own storage drivers and metadata
// stores, the same way a custom build registers its own (storage.Register,
// metadata.Register), from code rather than from init functions: berthcmd
// calls Register before it reads the configuration.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/metadata/postgres"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/azure"
	"github.com/berthhq/berth/storage/driver/filesystem"
	"github.com/berthhq/berth/storage/driver/gcs"
	"github.com/berthhq/berth/storage/driver/inmemory"
	"github.com/berthhq/berth/storage/driver/s3"
)

// None is the configuration of a driver or store without a section of its
// own: any key under its name is an error.
type None struct{}

// Register registers every built-in driver and store whose name is still
// free, so a custom build that registered its own under a built-in's name
// keeps it. Calling it again does nothing.
func Register() { once.Do(register) }

var once sync.Once

func register() {
	storageDriver("filesystem", storage.Factory[None]{
		Open: func(_ context.Context, _ *None, env storage.Env) (driver.Driver, error) {
			return filesystem.New(env.Root)
		},
		Check: func(_ *None, env storage.Env) error {
			if env.Root == "" {
				return errors.New("storage.root: must name a directory")
			}
			return nil
		},
	})
	storageDriver("inmemory", storage.Factory[None]{
		Open: func(context.Context, *None, storage.Env) (driver.Driver, error) { return inmemory.New(), nil },
	})
	storageDriver("s3", storage.Factory[s3.Config]{
		Open: func(ctx context.Context, c *s3.Config, _ storage.Env) (driver.Driver, error) {
			return s3.New(ctx, c.Options())
		},
		Check: func(c *s3.Config, _ storage.Env) error {
			o := c.Options()
			return o.Validate()
		},
	})
	storageDriver("gcs", storage.Factory[gcs.Config]{
		Open: func(ctx context.Context, c *gcs.Config, _ storage.Env) (driver.Driver, error) {
			return gcs.New(ctx, c.Options())
		},
		Check: func(c *gcs.Config, _ storage.Env) error {
			o := c.Options()
			return o.Validate()
		},
	})
	storageDriver("azure", storage.Factory[azure.Config]{
		Open: func(ctx context.Context, c *azure.Config, _ storage.Env) (driver.Driver, error) {
			return azure.New(ctx, c.Options())
		},
		Check: func(c *azure.Config, _ storage.Env) error {
			o := c.Options()
			return o.Validate()
		},
	})

	metadataStore("sqlite", metadata.Factory[None]{
		Open: func(_ context.Context, _ *None, env metadata.Env) (metadata.Store, error) {
			if err := os.MkdirAll(env.Data, 0o755); err != nil {
				return nil, err
			}
			return sqlite.Open(env.Path)
		},
		Check: func(_ *None, env metadata.Env) error {
			if env.Path == "" {
				return errors.New("metadata.path: must name the database file")
			}
			return nil
		},
	})
	metadataStore("postgres", metadata.Factory[None]{
		Open: func(ctx context.Context, _ *None, env metadata.Env) (metadata.Store, error) {
			return postgres.Open(ctx, env.DSN)
		},
		Check: func(_ *None, env metadata.Env) error {
			if env.DSN == "" {
				return fmt.Errorf("metadata.dsn: required with metadata.driver postgres (e.g. postgres://berth@db.example:5432/berth)")
			}
			return nil
		},
	})
}

func storageDriver[C any](name string, f storage.Factory[C]) {
	if _, taken := storage.LookupDriver(name); !taken {
		storage.Register(name, f)
	}
}

func metadataStore[C any](name string, f metadata.Factory[C]) {
	if _, taken := metadata.LookupStore(name); !taken {
		metadata.Register(name, f)
	}
}
