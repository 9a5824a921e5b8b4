package config

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/inmemory"
	"github.com/berthhq/berth/storage/driver/s3"
)

// testDriverConfig is the section of the "cfgtest" driver registered by
// these tests: every kind of value a section may hold.
type testDriverConfig struct {
	Bucket string        `yaml:"bucket"`
	Parts  int64         `yaml:"partSize"`
	Fast   bool          `yaml:"fast"`
	Expiry time.Duration `yaml:"expiry"`
	Hosts  []string      `yaml:"hosts"`
	Nested struct {
		Key string `yaml:"key"`
	} `yaml:"nested"`
}

// opened records what the cfgtest driver and store were opened with.
var opened struct {
	cfg   testDriverConfig
	env   storage.Env
	menv  metadata.Env
	mname string
}

func init() {
	storage.Register("cfgtest", storage.Factory[testDriverConfig]{
		Open: func(_ context.Context, c *testDriverConfig, env storage.Env) (driver.Driver, error) {
			opened.cfg, opened.env = *c, env
			return inmemory.New(), nil
		},
		Check: func(c *testDriverConfig, _ storage.Env) error {
			if c.Bucket == "" {
				return errors.New("bucket is required")
			}
			return nil
		},
	})
	type storeConfig struct {
		Name string `yaml:"name"`
	}
	metadata.Register("cfgtest", metadata.Factory[storeConfig]{
		Open: func(_ context.Context, c *storeConfig, env metadata.Env) (metadata.Store, error) {
			opened.menv, opened.mname = env, c.Name
			return nil, errors.New("no store here")
		},
	})
}

func TestDriverSectionsFromFile(t *testing.T) {
	t.Parallel()
	c := Default()
	err := c.LoadFile(writeFile(t, `
storage:
  driver: cfgtest
  cfgtest:
    bucket: b1
    partSize: 1048576
    fast: true
    expiry: 20m
    hosts: [a, b]
    nested:
      key: k
  s3:
    bucket: other
    pathStyle: true
metadata:
  driver: cfgtest
  cfgtest:
    name: meta
`))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Storage.Sections["cfgtest"].(*testDriverConfig)
	if !ok {
		t.Fatalf("cfgtest section = %#v", c.Storage.Sections["cfgtest"])
	}
	want := testDriverConfig{Bucket: "b1", Parts: 1 << 20, Fast: true, Expiry: 20 * time.Minute, Hosts: []string{"a", "b"}}
	want.Nested.Key = "k"
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("cfgtest section = %+v, want %+v", *got, want)
	}
	if s, ok := c.Storage.Sections["s3"].(*s3.Config); !ok || s.Bucket != "other" || !s.PathStyle {
		t.Errorf("s3 section = %#v", c.Storage.Sections["s3"])
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenStorage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opened.cfg, want) || opened.env != (storage.Env{Data: c.Data, Root: c.Storage.Root}) {
		t.Errorf("opened with %+v, %+v", opened.cfg, opened.env)
	}
	if _, err := c.OpenMetadata(t.Context()); err == nil || err.Error() != "no store here" {
		t.Errorf("OpenMetadata = %v, want the store's own error", err)
	}
	if opened.mname != "meta" || opened.menv.Path != c.Metadata.Path {
		t.Errorf("store opened with %q, %+v", opened.mname, opened.menv)
	}
}

func TestDriverSectionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content string
		parts         []string
	}{
		{"unknown key", "storage:\n  s3:\n    bucket: b\n    bukket: c\n",
			[]string{"line 4", "storage.s3.bukket", "s3 storage driver", "did you mean storage.s3.bucket?"}},
		{"unknown nested key", "storage:\n  cfgtest:\n    nested:\n      kee: x\n",
			[]string{"storage.cfgtest.nested.kee", "cfgtest storage driver", "did you mean storage.cfgtest.nested.key?"}},
		{"unregistered section", "storage:\n  ftp:\n    host: x\n",
			[]string{"storage.ftp", "neither a setting (driver, root)", "storage driver", "cfgtest", "filesystem", "s3"}},
		{"unregistered metadata section", "metadata:\n  mysql:\n    dsn: x\n",
			[]string{"metadata.mysql", "driver, path, dsn", "metadata store", "postgres", "sqlite"}},
		{"section without keys", "storage:\n  inmemory:\n    size: 1\n", []string{"storage.inmemory.size", "it has no settings"}},
		{"section not a mapping", "storage:\n  s3: yes\n", []string{"storage.s3", "mapping"}},
		{"bad value", "storage:\n  s3:\n    partSize: big\n", []string{"storage.s3"}},
		{"fraction", "storage:\n  s3:\n    partSize: 5.5\n", []string{"storage.s3.partSize", "whole number"}},
		{"duration without unit", "storage:\n  cfgtest:\n    expiry: 300\n", []string{"storage.cfgtest.expiry", "no unit"}},
		{"set twice", "storage:\n  s3:\n    bucket: a\n  s3:\n    bucket: b\n", []string{"storage.s3", "twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			wantErrorContaining(t, c.LoadFile(writeFile(t, tc.content)), tc.parts...)
		})
	}
}

func TestDriverSectionsFromEnv(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.LoadFile(writeFile(t, "storage:\n  s3:\n    bucket: from-file\n    region: eu-west-1\n")); err != nil {
		t.Fatal(err)
	}
	err := c.ApplyEnv([]string{
		"BERTH_STORAGE_DRIVER=s3",
		"BERTH_STORAGE_S3_BUCKET=from-env",
		"BERTH_STORAGE_S3_PATHSTYLE=true",
		"BERTH_STORAGE_S3_PARTSIZE=6291456",
		"BERTH_STORAGE_CFGTEST_EXPIRY=90s",
		"BERTH_STORAGE_CFGTEST_HOSTS=a, b",
		"BERTH_STORAGE_CFGTEST_NESTED_KEY=k",
		"BERTH_METADATA_CFGTEST_NAME=n",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage.Sections["s3"].(*s3.Config)
	if s.Bucket != "from-env" || s.Region != "eu-west-1" || !s.PathStyle || s.PartSize != 6<<20 {
		t.Errorf("s3 section after env = %+v", *s)
	}
	ct := c.Storage.Sections["cfgtest"].(*testDriverConfig)
	if ct.Expiry != 90*time.Second || !reflect.DeepEqual(ct.Hosts, []string{"a", "b"}) || ct.Nested.Key != "k" {
		t.Errorf("cfgtest section from env = %+v", *ct)
	}
	if _, ok := c.Metadata.Sections["cfgtest"]; !ok {
		t.Error("metadata.cfgtest not set from the environment")
	}
	// Sections nobody set stay absent.
	if _, ok := c.Storage.Sections["inmemory"]; ok {
		t.Error("an untouched section was added")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		kv    string
		parts []string
	}{
		{"BERTH_STORAGE_S3_BUKKET=x", []string{"BERTH_STORAGE_S3_BUKKET", "names no setting", "BERTH_STORAGE_S3_BUCKET"}},
		{"BERTH_STORAGE_FTP_HOST=x", []string{"BERTH_STORAGE_FTP_HOST", "names no setting"}},
		{"BERTH_STORAGE_CFGTEST_EXPIRY=300", []string{"BERTH_STORAGE_CFGTEST_EXPIRY", "duration"}},
		{"BERTH_STORAGE_S3_PARTSIZE=big", []string{"BERTH_STORAGE_S3_PARTSIZE", "integer"}},
	} {
		c := Default()
		wantErrorContaining(t, c.ApplyEnv([]string{tc.kv}), tc.parts...)
		if len(c.Storage.Sections) != 0 {
			t.Errorf("%s: a refused variable added a section: %v", tc.kv, c.Storage.Sections)
		}
	}
}

func TestDriverCheck(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Storage.Driver = "cfgtest"
	c.Metadata.Driver = "postgres"
	err := c.Validate()
	wantErrorContaining(t, err, "storage.cfgtest: bucket is required", "metadata.postgres: metadata.dsn: required")
	if n := errorCount(err); n != 2 {
		t.Errorf("%d errors, want 2: %v", n, err)
	}
	// Open refuses a configuration that was never validated.
	c = Default()
	if _, err := c.OpenStorage(t.Context()); !errors.Is(err, errNotValidated) {
		t.Errorf("OpenStorage before Validate = %v", err)
	}
}
