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
		{Config{IntervalHours: -1, GraceHours: 1}, "gc.intervalHours -1"},
		{Config{IntervalHours: 0, GraceHours: 0}, "gc.graceHours 0"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	opts, err := Config{IntervalHours: 6, GraceHours: 2}.Options(Retention{{Repositories: []string{"**"}, UntaggedAfterHours: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Grace != 2*time.Hour || opts.Policy.rule("x").untaggedAfter != 3*time.Hour {
		t.Errorf("Options = %+v", opts)
	}
	if got := (Config{IntervalHours: 6}).Interval(); got != 6*time.Hour {
		t.Errorf("Interval = %v", got)
	}
}

func TestRetentionValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rules Retention
		want  []string // substrings of the error; none: valid
	}{
		{Retention{{Repositories: []string{"**"}, KeepLast: intp(3), KeepTags: []string{`^v\d+$`}, UntaggedAfterHours: 24}}, nil},
		{Retention{{Repositories: []string{"release/**"}}, {Repositories: []string{"**"}, UntaggedAfterHours: 1}}, nil},
		{Retention{{KeepLast: intp(1)}}, []string{"retention[0].repositories: name at least one"}},
		{Retention{{Repositories: []string{"Team/*"}, KeepLast: intp(1)}}, []string{`retention[0].repositories: "Team/*"`}},
		{Retention{{Repositories: []string{"a/***"}, KeepLast: intp(1)}}, []string{`retention[0].repositories: "a/***": three stars`}},
		{Retention{{Repositories: []string{"**"}, KeepLast: intp(-1)}}, []string{"retention[0].keepLast -1"}},
		{Retention{{Repositories: []string{"**"}, KeepTags: []string{"x"}}}, []string{"retention[0].keepTags: only protects"}},
		{Retention{{Repositories: []string{"**"}, KeepLast: intp(1), KeepTags: []string{"("}}}, []string{`retention[0].keepTags: "("`}},
		{Retention{{Repositories: []string{"**"}}, {Repositories: []string{"**"}, UntaggedAfterHours: -2}}, []string{"retention[1].untaggedAfterHours -2"}},
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
  intervalHours: 12
  graceHours: 6
retention:
  - repositories: ["team/**"]
    keepLast: 10
    keepTags: ['^v\d+\.\d+\.\d+$', "^latest$"]
    untaggedAfterHours: 168
  - repositories: ["**"]
    untaggedAfterHours: 720
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
	if cfg.GC != (Config{IntervalHours: 12, GraceHours: 6}) {
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

	// untaggedAfter in code only.
	bad := "retention:\n  - repositories: [x]\n    untaggedAfter: 1h\n"
	dec = yaml.NewDecoder(strings.NewReader(bad))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Error("untaggedAfter accepted in YAML")
	}
}
