package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDeployExamples loads the configurations of examples/deploy (the systemd unit's file and
// the Kubernetes ConfigMaps) and validates them, with what the deployments set elsewhere (the
// data directory, the database from a Secret) filled in.
func TestDeployExamples(t *testing.T) {
	root := filepath.Join("..", "examples", "deploy")
	files := map[string][]byte{}
	b, err := os.ReadFile(filepath.Join(root, "systemd", "berth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files["systemd"] = b
	for _, name := range []string{"single", "replicas"} {
		data, err := os.ReadFile(filepath.Join(root, "kubernetes", name, "berth.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				Kind string            `yaml:"kind"`
				Data map[string]string `yaml:"data"`
			}
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("kubernetes/%s: %v", name, err)
			}
			if doc.Kind == "ConfigMap" {
				files["kubernetes/"+name] = []byte(doc.Data["berth.yaml"])
			}
		}
		if files["kubernetes/"+name] == nil {
			t.Errorf("kubernetes/%s has no ConfigMap with berth.yaml", name)
		}
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "berth.yaml")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := Default()
			if err := cfg.LoadFile(path); err != nil {
				t.Fatal(err)
			}
			cfg.Data = t.TempDir()
			if cfg.Metadata.Driver == "postgres" {
				cfg.Metadata.DSN = "postgres://berth@db/berth"
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("invalid:\n%v", err)
			}
			if cfg.OpenWithoutAuth() {
				t.Error("an example deployment serves without authentication")
			}
		})
	}
}
