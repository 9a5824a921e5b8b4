package plugin

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

type cfg struct {
	Name string `yaml:"name"`
}

func newEntry(check func(*cfg, string) error) Entry[string, string] {
	return NewEntry(func(_ context.Context, c *cfg, env string) (string, error) {
		return c.Name + "@" + env, nil
	}, check)
}

func wantPanic(t *testing.T, what, contains string, fn func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("%s did not panic", what)
			return
		}
		if s, _ := r.(string); !strings.Contains(s, contains) {
			t.Errorf("%s panicked with %v, want %q in it", what, r, contains)
		}
	}()
	fn()
}

func TestSetAddLookup(t *testing.T) {
	s := NewSet[string, string]("thing", "driver")
	s.Add("b2", newEntry(nil))
	s.Add("a", newEntry(func(c *cfg, _ string) error {
		if c.Name == "" {
			return errors.New("name is required")
		}
		return nil
	}))
	if got := s.Names(); !slices.Equal(got, []string{"a", "b2"}) {
		t.Errorf("Names() = %q", got)
	}
	e, ok := s.Lookup("a")
	if !ok {
		t.Fatal("a not found")
	}
	c := e.NewConfig().(*cfg)
	if _, err := e.Open(t.Context(), c, "env"); err == nil || err.Error() != "name is required" {
		t.Errorf("Open of an invalid configuration = %v, want the check's error", err)
	}
	c.Name = "x"
	if got, err := e.Open(t.Context(), c, "env"); err != nil || got != "x@env" {
		t.Errorf("Open = %q, %v", got, err)
	}
	if _, err := e.Open(t.Context(), &struct{}{}, "env"); err == nil {
		t.Error("Open accepted another configuration type")
	}
	if _, ok := s.Lookup("c"); ok {
		t.Error("Lookup found an unregistered name")
	}

	for _, tc := range []struct{ name, panic string }{
		{"", "lower-case"}, {"Gcs", "lower-case"}, {"my-driver", "lower-case"}, {"my_driver", "lower-case"},
		{"1st", "lower-case"}, {"driver", "setting"}, {"a", "twice"},
	} {
		wantPanic(t, "Add("+tc.name+")", tc.panic, func() { s.Add(tc.name, newEntry(nil)) })
	}
	wantPanic(t, "Add(nil)", "nil", func() { s.Add("c", nil) })
	wantPanic(t, "NewEntry(not a struct)", "not a struct", func() {
		NewEntry(func(context.Context, *string, string) (string, error) { return "", nil }, nil)
	})
	wantPanic(t, "NewEntry(nil)", "nil", func() { NewEntry[cfg, string, string](nil, nil) })
}
