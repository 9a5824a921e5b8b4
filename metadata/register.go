package metadata

import (
	"context"

	"github.com/berthhq/berth/internal/plugin"
)

// Env is what berth hands every metadata store besides its own
// configuration section.
type Env struct {
	// Data is berth's data directory (the data setting).
	Data string
	// Path is metadata.path: the database file of stores that keep one
	// on this machine, DATA/metadata.db unless configured.
	Path string
	// DSN is metadata.dsn: the connection string of stores that talk to
	// a database server. It may hold a password: never log it.
	DSN string
}

// Factory describes a metadata store to berth: how to check and open it
// from its configuration C, a struct whose yaml tags name the keys of the
// store's section metadata.NAME (environment: BERTH_METADATA_NAME_KEY).
// Keys that C does not have are errors naming the store; C's zero value is
// what an absent section means.
type Factory[C any] struct {
	// Open returns the store, its schema brought up to date. ctx bounds
	// connecting and migrating.
	Open func(ctx context.Context, cfg *C, env Env) (Store, error)
	// Check validates cfg and env without contacting anything, so the
	// problem is reported with the others when berth starts. Optional.
	Check func(cfg *C, env Env) error
}

// Registered is a registered metadata store as berth's configuration sees
// it, with its configuration type erased.
type Registered = plugin.Entry[Store, Env]

var stores = plugin.NewSet[Store, Env]("metadata store", "driver", "path", "dsn")

// Register makes a metadata store available as metadata.driver NAME, with
// its section metadata.NAME. Call it before berth reads its configuration
// (before berthcmd.Execute). name is lower-case letters and digits starting
// with a letter, and none of "driver", "path" and "dsn". Register panics if
// name is invalid or taken, or if C is not a struct. berthcmd registers the
// built-in stores (sqlite, postgres) under any of those names still free
// when it starts.
func Register[C any](name string, f Factory[C]) {
	stores.Add(name, plugin.NewEntry(f.Open, f.Check))
}

// LookupStore returns the store registered as name.
func LookupStore(name string) (Registered, bool) { return stores.Lookup(name) }

// Stores returns the names of the registered metadata stores, sorted.
func Stores() []string { return stores.Names() }
