package storage

import (
	"context"

	"github.com/berthhq/berth/internal/plugin"
	"github.com/berthhq/berth/storage/driver"
)

// Env is what berth hands every storage driver besides its own
// configuration section.
type Env struct {
	// Data is berth's data directory (the data setting).
	Data string
	// Root is storage.root: the directory of drivers that keep files on
	// this machine, DATA/storage unless configured.
	Root string
}

// Factory describes a storage driver to berth: how to check and open it
// from its configuration C, a struct whose yaml tags name the keys of the
// driver's section storage.NAME. Every key can also be set with the
// environment variable BERTH_STORAGE_NAME_KEY (upper case). Keys that C
// does not have are errors that name the driver, and C's zero value is
// what an absent section means.
type Factory[C any] struct {
	// Open returns the driver cfg describes. It may contact the backend
	// (to fail at start rather than on the first push); ctx bounds that.
	Open func(ctx context.Context, cfg *C, env Env) (driver.Driver, error)
	// Check validates cfg without contacting anything, so that a bad
	// section is reported with every other configuration problem when
	// berth starts. Optional; Open is only called after it passed.
	Check func(cfg *C, env Env) error
}

// Registered is a registered storage driver as berth's configuration sees
// it, with its configuration type erased.
type Registered = plugin.Entry[driver.Driver, Env]

var drivers = plugin.NewSet[driver.Driver, Env]("storage driver", "driver", "root")

// Register makes a storage driver available as storage.driver NAME, with
// its section storage.NAME. Call it before berth reads its configuration,
// typically first thing in main before berthcmd.Execute. name is lower-case
// letters and digits starting with a letter, and neither "driver" nor
// "root". Register panics if name is invalid or taken, or if C is not a
// struct: like database/sql.Register, it is called from code at start and
// a clash is a bug there. berthcmd registers the built-in drivers
// (filesystem, inmemory, s3, gcs, azure) under any of those names that is
// still free when it starts, so a custom build may replace one.
func Register[C any](name string, f Factory[C]) {
	drivers.Add(name, plugin.NewEntry(f.Open, f.Check))
}

// LookupDriver returns the driver registered as name.
func LookupDriver(name string) (Registered, bool) { return drivers.Lookup(name) }

// Drivers returns the names of the registered storage drivers, sorted.
func Drivers() []string { return drivers.Names() }
