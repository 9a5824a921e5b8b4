package bench

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDistributionConfigWith(t *testing.T) {
	t.Parallel()
	cfg := distributionConfigWith("/data/storage", "127.0.0.1:5000",
		distributionS3Storage("http://127.0.0.1:9000", "dist"), distributionProxyConfig("http://127.0.0.1:5001"))
	var got struct {
		Storage map[string]map[string]any `yaml:"storage"`
		Proxy   struct {
			RemoteURL string `yaml:"remoteurl"`
		} `yaml:"proxy"`
		HTTP struct {
			Addr string `yaml:"addr"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &got); err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	if _, ok := got.Storage["filesystem"]; ok {
		t.Errorf("filesystem driver left in:\n%s", cfg)
	}
	s3 := got.Storage["s3"]
	if s3["regionendpoint"] != "http://127.0.0.1:9000" || s3["bucket"] != "dist" || s3["forcepathstyle"] != true || s3["secure"] != false {
		t.Errorf("s3 section = %v", s3)
	}
	if got.Storage["redirect"]["disable"] != true || got.Storage["delete"]["enabled"] != true {
		t.Errorf("storage = %v", got.Storage)
	}
	if got.Proxy.RemoteURL != "http://127.0.0.1:5001" || got.HTTP.Addr != "127.0.0.1:5000" {
		t.Errorf("proxy %q, addr %q", got.Proxy.RemoteURL, got.HTTP.Addr)
	}
	// Without a storage section the filesystem driver stays.
	if cfg := distributionConfigWith("/data/storage", "127.0.0.1:5000", "", ""); cfg != DistributionConfig("/data/storage", "127.0.0.1:5000") {
		t.Errorf("unchanged config differs:\n%s", cfg)
	}
}

func TestBerthConfigs(t *testing.T) {
	t.Parallel()
	var cache struct {
		Registries []struct {
			Name, Type, Prefix string
			Upstream           struct{ URL string }
		}
	}
	if err := yaml.Unmarshal([]byte(berthCacheConfig("http://127.0.0.1:5001")), &cache); err != nil {
		t.Fatal(err)
	}
	if len(cache.Registries) != 1 || cache.Registries[0].Type != "cache" || cache.Registries[0].Prefix != cachePrefix || cache.Registries[0].Upstream.URL != "http://127.0.0.1:5001" {
		t.Errorf("cache config = %+v", cache)
	}
	var s3 struct {
		Storage struct {
			Driver string
			S3     map[string]any
		}
	}
	if err := yaml.Unmarshal([]byte(berthS3Config("http://127.0.0.1:9000", "b")), &s3); err != nil {
		t.Fatal(err)
	}
	if s3.Storage.Driver != "s3" || s3.Storage.S3["pathStyle"] != true || s3.Storage.S3["bucket"] != "b" || s3.Storage.S3["endpoint"] != "http://127.0.0.1:9000" {
		t.Errorf("s3 config = %+v", s3)
	}
	var pg struct{ Metadata struct{ Driver, DSN string } }
	dsn := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&pool_max_conns=20"
	if err := yaml.Unmarshal([]byte(berthPostgresConfig(dsn)), &pg); err != nil {
		t.Fatal(err)
	}
	if pg.Metadata.Driver != "postgres" || pg.Metadata.DSN != dsn {
		t.Errorf("postgres config = %+v", pg)
	}
}

func TestCopySection(t *testing.T) {
	t.Parallel()
	res := CopyResult{ImageBytes: 1 << 30, Tools: []CopyToolResult{
		{Tool: "berth", Median: 2 * time.Second, CPU: time.Second},
		{Tool: "crane", Median: 3 * time.Second, CPU: time.Second},
		{Tool: "skopeo", Median: time.Second, CPU: time.Second},
	}}
	s := copySection(res, 1<<30)
	var targets []*Target
	for _, r := range s.Rows {
		if r.Target != nil {
			targets = append(targets, r.Target)
		}
	}
	if len(targets) != 2 || !targets[0].Met || targets[1].Met {
		t.Fatalf("targets = %+v", targets)
	}
	md := (&Report{Sections: []Section{s}}).Markdown()
	if !strings.Contains(md, "| crane: 3.00 s |") || !strings.Contains(md, "skopeo: 1.00 s") {
		t.Errorf("peer cells missing:\n%s", md)
	}
}
