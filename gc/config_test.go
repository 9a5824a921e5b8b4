package gc

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Interval: -time.Hour, Grace: time.Hour}, "gc.interval -1h0m0s"},
		{Config{Interval: time.Second, Grace: time.Hour}, "gc.interval 1s: want 0s (no schedule) or at least 1m0s"},
		{Config{Interval: 0, Grace: 0}, "gc.grace 0s: want at least 1h0m0s"},
		{Config{Interval: 0, Grace: 59 * time.Minute}, "gc.grace 59m0s"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	opts, err := Config{Interval: 6 * time.Hour, Grace: 2 * time.Hour}.Options(Retention{{Repositories: []string{"**"}, UntaggedAfter: 3 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Grace != 2*time.Hour || opts.Policy.rule("x").untaggedAfter != 3*time.Hour {
		t.Errorf("Options = %+v", opts)
	}
	for _, c := range []Config{{Interval: 0, Grace: time.Hour}, {Interval: time.Minute, Grace: 90 * time.Minute}} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
	}
	if _, err := (Config{Grace: time.Minute}).Options(nil); err == nil || !strings.Contains(err.Error(), "gc.grace") {
		t.Errorf("Options with a short grace: %v", err)
	}
}

func TestRetentionValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rules Retention
		want  []string // substrings of the error; none: valid
	}{
		{Retention{{Repositories: []string{"**"}, KeepLast: intp(3), KeepTags: []string{`^v\d+$`}, UntaggedAfter: 24 * time.Hour}}, nil},
		{Retention{{Repositories: []string{"release/**"}}, {Repositories: []string{"**"}, UntaggedAfter: time.Hour}}, nil},
		{Retention{{KeepLast: intp(1)}}, []string{"retention[0].repositories: name at least one"}},
		{Retention{{Repositories: []string{"Team/*"}, KeepLast: intp(1)}}, []string{`retention[0].repositories: "Team/*"`}},
		{Retention{{Repositories: []string{"a/***"}, KeepLast: intp(1)}}, []string{`retention[0].repositories: "a/***": three stars`}},
		{Retention{{Repositories: []string{"**"}, KeepLast: intp(-1)}}, []string{"retention[0].keepLast -1"}},
		{Retention{{Repositories: []string{"**"}, KeepTags: []string{"x"}}}, []string{"retention[0].keepTags: only protects"}},
		{Retention{{Repositories: []string{"**"}, KeepLast: intp(1), KeepTags: []string{"("}}}, []string{`retention[0].keepTags: "("`}},
		{Retention{{Repositories: []string{"**"}}, {Repositories: []string{"**"}, UntaggedAfter: -2 * time.Hour}}, []string{"retention[1].untaggedAfter -2h0m0s: want a positive duration"}},
		{Retention{{Repositories: []string{"**"}, UntaggedAfter: 30 * time.Minute}}, []string{"retention[0].untaggedAfter 30m0s: want at least 1h0m0s"}},
		{Retention{{Repositories: []string{"**"}, UntaggedAfter: -time.Second}}, []string{"retention[0].untaggedAfter"}},
	} {
		err := c.rules.Validate()
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("Validate(%+v): %v", c.rules, err)
			}
			continue
		}
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %v, want an error containing %q", c.rules, err, w)
			}
		}
	}
}

// TestYAML decodes the sections strictly, as berth's configuration does.
func TestYAML(t *testing.T) {
	t.Parallel()
	doc := `
gc:
  interval: 12h
  grace: 90m
retention:
  - repositories: ["team/**"]
    keepLast: 10
    keepTags: ['^v\d+\.\d+\.\d+$', "^latest$"]
    untaggedAfter: 168h
  - repositories: ["**"]
    untaggedAfter: 720h
`
	var cfg struct {
		GC        Config    `yaml:"gc"`
		Retention Retention `yaml:"retention"`
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.GC != (Config{Interval: 12 * time.Hour, Grace: 90 * time.Minute}) {
		t.Errorf("gc = %+v", cfg.GC)
	}
	p, err := cfg.Retention.Policy()
	if err != nil {
		t.Fatal(err)
	}
	r := p.rule("team/app")
	if r == nil || r.keepLast != 10 || len(r.keepTags) != 2 || r.untaggedAfter != 168*time.Hour || !r.keepTags[0].MatchString("v1.2.3") {
		t.Errorf("rule for team/app = %+v", r)
	}
	if r := p.rule("lib/x"); r == nil || r.keepLast != -1 || r.untaggedAfter != 720*time.Hour {
		t.Errorf("rule for lib/x = %+v", r)
	}
	if (*Policy)(nil).rule("x") != nil {
		t.Error("the nil policy has a rule")
	}
}
