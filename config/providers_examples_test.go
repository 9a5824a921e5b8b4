package config

import (
	"path/filepath"
	"testing"
)

// TestProviderExamples loads every example of examples/providers: each is a valid
// configuration as it stands.
func TestProviderExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "providers", "*.yaml"))
	if err != nil || len(files) < 7 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := Default()
			if err := c.LoadFile(f); err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(c.Registries) == 0 || c.Registries[0].Upstream.URL == "" {
				t.Fatalf("no cache with an upstream: %+v", c.Registries)
			}
		})
	}
}
