// Package plugin is the registry behind storage.Register and
// metadata.Register: named factories, each with the type of its own
// configuration section, looked up by name when berth reads its
// configuration and opens its backends.
//
// A factory's configuration is a struct whose yaml tags name the keys of
// its section. Registering it keeps the type, so that configuration files
// and environment variables can be decoded into it strictly (unknown keys
// are errors) before anything is opened.
package plugin

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sync"
)

// Entry is one registered factory, with its configuration type erased so
// that the configuration package can handle every kind alike. T is what
// the factory makes (a storage driver, a metadata store) and E what berth
// hands every factory besides its own section.
type Entry[T, E any] interface {
	// NewConfig returns a pointer to a new, zero configuration struct.
	NewConfig() any
	// Check validates cfg (from NewConfig) without contacting anything.
	Check(cfg any, env E) error
	// Open makes the backend cfg describes.
	Open(ctx context.Context, cfg any, env E) (T, error)
}

// NewEntry builds an Entry from a typed open function and an optional
// check. It panics if C is not a struct type: that is a programming error
// in the registering code, found the first time it runs.
func NewEntry[C, T, E any](open func(context.Context, *C, E) (T, error), check func(*C, E) error) Entry[T, E] {
	if open == nil {
		panic("plugin: nil open function")
	}
	if t := reflect.TypeFor[C](); t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("plugin: configuration type %v is not a struct", t))
	}
	return entry[C, T, E]{open: open, check: check}
}

type entry[C, T, E any] struct {
	open  func(context.Context, *C, E) (T, error)
	check func(*C, E) error
}

func (e entry[C, T, E]) NewConfig() any { return new(C) }

func (e entry[C, T, E]) config(cfg any) (*C, error) {
	c, ok := cfg.(*C)
	if !ok || c == nil {
		return nil, fmt.Errorf("configuration is a %T, want a *%v", cfg, reflect.TypeFor[C]())
	}
	return c, nil
}

func (e entry[C, T, E]) Check(cfg any, env E) error {
	c, err := e.config(cfg)
	if err != nil {
		return err
	}
	if e.check == nil {
		return nil
	}
	return e.check(c, env)
}

func (e entry[C, T, E]) Open(ctx context.Context, cfg any, env E) (T, error) {
	c, err := e.config(cfg)
	if err != nil {
		var zero T
		return zero, err
	}
	if e.check != nil {
		if err := e.check(c, env); err != nil {
			var zero T
			return zero, err
		}
	}
	return e.open(ctx, c, env)
}

// nameRE is what a factory may be called: its name is a configuration key
// and part of environment variable names (BERTH_STORAGE_NAME_KEY), so it
// has neither upper case nor separators.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// Set is a set of named entries of one kind, safe for concurrent use.
type Set[T, E any] struct {
	kind     string   // "storage driver", for messages
	reserved []string // names the kind's own settings use
	mu       sync.RWMutex
	entries  map[string]Entry[T, E]
}

// NewSet returns an empty set. kind names what it holds in messages;
// reserved are keys of the configuration section that are settings, not
// entries (such as "driver"), which no entry may be named.
func NewSet[T, E any](kind string, reserved ...string) *Set[T, E] {
	return &Set[T, E]{kind: kind, reserved: reserved, entries: map[string]Entry[T, E]{}}
}

// Add registers e under name. Like database/sql.Register it panics on a
// name that is invalid, reserved or taken: registration happens once, at
// start, from code, and a clash is a bug to fix there.
func (s *Set[T, E]) Add(name string, e Entry[T, E]) {
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("register %s %q: a name is lower-case letters and digits, starting with a letter", s.kind, name))
	}
	if slices.Contains(s.reserved, name) {
		panic(fmt.Sprintf("register %s %q: the name is a setting of the section", s.kind, name))
	}
	if e == nil {
		panic(fmt.Sprintf("register %s %q: nil factory", s.kind, name))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.entries[name]; dup {
		panic(fmt.Sprintf("register %s %q: registered twice", s.kind, name))
	}
	s.entries[name] = e
}

// Lookup returns the entry registered as name.
func (s *Set[T, E]) Lookup(name string) (Entry[T, E], bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[name]
	return e, ok
}

// Names returns the registered names, sorted.
func (s *Set[T, E]) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.entries))
	for n := range s.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Kind is what the set holds, as its messages say it ("storage driver").
func (s *Set[T, E]) Kind() string { return s.kind }
