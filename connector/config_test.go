package connector

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := `
- name: local
  type: hosted
  prefix: local
- name: hub
  type: cache
  prefix: hub/
  upstream:
    url: https://docker.io
  tagTTL: 0s
  notFoundTTL: 1m
  probeInterval: 10s
  mirrorOf: [docker.io]
- name: all
  type: virtual
  prefix: all/
  members: [local, hub]
  pushTo: local
`
	var cfg Config
	if err := yaml.Unmarshal([]byte(good), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if cfg[0].Prefix != "local/" {
		t.Errorf("prefix %q, want the trailing / added", cfg[0].Prefix)
	}
	// A TTL of 0 is set (revalidate every time), not unset (the default).
	if hub := cfg[1]; hub.TagTTL == nil || *hub.TagTTL != 0 || hub.NotFoundTTL == nil || *hub.NotFoundTTL != time.Minute ||
		hub.CatalogTTL != nil || hub.ProbeInterval != 10*time.Second {
		t.Errorf("durations of hub: tagTTL %v, notFoundTTL %v, catalogTTL %v, probeInterval %v", hub.TagTTL, hub.NotFoundTTL, hub.CatalogTTL, hub.ProbeInterval)
	}
	if cfg[1].Upstream.SingleNamePrefix != "library/" {
		t.Errorf("Docker Hub's single-name prefix %q, want library/", cfg[1].Upstream.SingleNamePrefix)
	}

	for _, c := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no name or type", Config{{}}, []string{"registries[0]: name: required", "type: required"}},
		{"bad name", Config{{Name: "Hub!", Type: TypeHosted}}, []string{`name "Hub!"`}},
		{"duplicates", Config{{Name: "a", Type: TypeHosted, Prefix: "x/"}, {Name: "a", Type: TypeHosted, Prefix: "x/"}},
			[]string{`name "a": already used`, `prefix "x/": already used`}},
		{"bad prefix", Config{{Name: "a", Type: TypeHosted, Prefix: "Up/"}}, []string{`prefix "Up/"`}},
		{"cache without url", Config{{Name: "c", Type: TypeCache}}, []string{"upstream.url: required"}},
		{"cache url with path", Config{cacheOf("c", "c/", "https://example.com/v2")}, []string{"no path"}},
		{"cache url with user", Config{cacheOf("c", "c/", "https://u:p@example.com")}, []string{"credentials"}},
		{"ftp", Config{cacheOf("c", "c/", "ftp://example.com")}, []string{"want http(s)"}},
		{"password without user", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x", Password: "p"}}}, []string{"username: required"}},
		{"both passwords", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x", Username: "u", Password: "p", PasswordFile: "f"}}}, []string{"not both"}},
		{"bad glob", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x"}, Allow: []string{"a?b"}}}, []string{`registries[0] (c): allow: "a?b": character '?'`}},
		{"bad deny glob", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x"}, Deny: []string{""}}}, []string{`registries[0] (c): deny: "": a pattern needs`}},
		{"negative ttl", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x"}, TagTTL: durp(-time.Second)}}, []string{"registries[0] (c): tagTTL -1s: must not be negative"}},
		{"short probe interval", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x"}, ProbeInterval: time.Millisecond}}, []string{"probeInterval 1ms: want at least 1s"}},
		{"long timeout", Config{{Name: "c", Type: TypeCache, Upstream: Upstream{URL: "https://x", Timeout: 2 * time.Hour}}}, []string{"upstream.timeout 2h0m0s: want from 1s to 1h"}},
		{"ttl on a virtual registry", Config{{Name: "h", Type: TypeHosted, Prefix: "h/"}, {Name: "v", Type: TypeVirtual, Members: []string{"h"}, CatalogTTL: durp(0)}}, []string{"TTLs and mirrorOf (and prefetch and sync) are for cache registries"}},
		{"hosted with upstream", Config{{Name: "h", Type: TypeHosted, Upstream: Upstream{URL: "https://x"}}}, []string{"only name and prefix"}},
		{"mirror twice", Config{
			{Name: "a", Type: TypeCache, Prefix: "a/", Upstream: Upstream{URL: "https://x"}, MirrorOf: []string{"docker.io"}},
			{Name: "b", Type: TypeCache, Prefix: "b/", Upstream: Upstream{URL: "https://y"}, MirrorOf: []string{"index.docker.io"}},
		}, []string{"mirrors it already"}},
		{"virtual members", Config{
			{Name: "h", Type: TypeHosted, Prefix: "h/"},
			{Name: "c", Type: TypeCache, Prefix: "c/", Upstream: Upstream{URL: "https://x"}},
			{Name: "v", Type: TypeVirtual, Prefix: "v/", Members: []string{"h", "nope", "h", "w"}, PushTo: "c"},
			{Name: "w", Type: TypeVirtual, Prefix: "w/"},
		}, []string{`member "nope": no registry`, `member "h": listed twice`, `member "w": is virtual`,
			`pushTo "c": must be one of the members`, "w): members: a virtual registry needs"}},
		{"push to cache", Config{
			{Name: "c", Type: TypeCache, Prefix: "c/", Upstream: Upstream{URL: "https://x"}},
			{Name: "v", Type: TypeVirtual, Prefix: "v/", Members: []string{"c"}, PushTo: "c"},
		}, []string{"must be a hosted registry"}},
	} {
		err := c.cfg.Validate()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}
