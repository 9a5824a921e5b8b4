package gc

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/berthhq/berth/internal/glob"
)

// Config is the gc section of berth's configuration.
type Config struct {
	// IntervalHours is the time between scheduled collections; 0 turns
	// the schedule off (berth gc still runs on demand).
	IntervalHours int `yaml:"intervalHours"`
	// GraceHours is how long a blob link or stored blob that nothing
	// references is kept: longer than the longest push (first blob to
	// manifest) must take. It is also how long a manifest referencing
	// collected content is refused (the tombstone period).
	GraceHours int `yaml:"graceHours"`
}

// DefaultConfig is the gc section's defaults: a collection a day, a day's
// grace.
func DefaultConfig() Config {
	return Config{IntervalHours: 24, GraceHours: 24}
}

// Validate checks the section; errors name the keys (gc.graceHours).
func (c Config) Validate() error {
	var errs []error
	if c.IntervalHours < 0 {
		errs = append(errs, fmt.Errorf("gc.intervalHours %d: want 0 (no schedule) or more", c.IntervalHours))
	}
	if c.GraceHours < 1 {
		errs = append(errs, fmt.Errorf("gc.graceHours %d: want at least 1", c.GraceHours))
	}
	return errors.Join(errs...)
}

// Interval is the schedule's period; zero means no schedule.
func (c Config) Interval() time.Duration { return time.Duration(c.IntervalHours) * time.Hour }

// Options returns the collection options of this configuration with the
// given retention rules.
func (c Config) Options(r Retention) (Options, error) {
	if err := c.Validate(); err != nil {
		return Options{}, err
	}
	p, err := r.Policy()
	if err != nil {
		return Options{}, err
	}
	return Options{Grace: time.Duration(c.GraceHours) * time.Hour, Policy: p}, nil
}

// Retention is the retention section: rules, the first matching a
// repository applies. A rule that sets neither KeepLast nor an untagged
// period keeps everything in its repositories: an exemption from the rules
// after it.
type Retention []Rule

// Rule is one retention rule.
type Rule struct {
	// Repositories are globs: '*' within one path component, '**' across
	// components ("team/**" is everything under team/, "**" everything).
	Repositories []string `yaml:"repositories"`
	// KeepLast, when set, keeps that many of the most recently pushed
	// tags and removes the others, except those KeepTags protects. Unset,
	// no tag is removed.
	KeepLast *int `yaml:"keepLast"`
	// KeepTags are regular expressions (RE2, unanchored: anchor them with
	// ^ and $): matching tags are never removed and do not count against
	// KeepLast.
	KeepTags []string `yaml:"keepTags"`
	// UntaggedAfterHours, when set, makes untagged manifests first pushed
	// that long ago eligible for collection (unless a live index or
	// subject keeps them). Unset, untagged manifests are kept.
	UntaggedAfterHours int `yaml:"untaggedAfterHours"`
	// UntaggedAfter is UntaggedAfterHours for callers in code that need a
	// finer unit; it wins when set.
	UntaggedAfter time.Duration `yaml:"-"`
}

// Validate checks every rule; errors name the rule (retention[1].keepLast).
func (r Retention) Validate() error {
	_, err := r.Policy()
	return err
}

// Policy compiles the rules.
func (r Retention) Policy() (*Policy, error) {
	var errs []error
	bad := func(i int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("retention[%d].%s", i, fmt.Sprintf(format, args...)))
	}
	p := &Policy{}
	for i, rule := range r {
		c := compiledRule{keepLast: -1, untaggedAfter: rule.UntaggedAfter}
		if len(rule.Repositories) == 0 {
			bad(i, "repositories: name at least one repository glob (\"**\" for all)")
		}
		for _, pat := range rule.Repositories {
			g, err := glob.Compile(pat)
			if err != nil {
				bad(i, "repositories: %v", err)
				continue
			}
			c.repos = append(c.repos, g)
		}
		if rule.KeepLast != nil {
			if *rule.KeepLast < 0 {
				bad(i, "keepLast %d: want 0 or more", *rule.KeepLast)
			}
			c.keepLast = *rule.KeepLast
		}
		if len(rule.KeepTags) > 0 && rule.KeepLast == nil {
			bad(i, "keepTags: only protects tags from keepLast; set keepLast too (0 keeps only the matching tags)")
		}
		for _, pat := range rule.KeepTags {
			re, err := regexp.Compile(pat)
			if err != nil {
				bad(i, "keepTags: %q: %v", pat, err)
				continue
			}
			c.keepTags = append(c.keepTags, re)
		}
		switch {
		case rule.UntaggedAfter < 0:
			bad(i, "untaggedAfter %v: want a positive duration", rule.UntaggedAfter)
		case rule.UntaggedAfter == 0 && rule.UntaggedAfterHours < 0:
			bad(i, "untaggedAfterHours %d: want 1 or more, or leave it out to keep untagged manifests", rule.UntaggedAfterHours)
		case rule.UntaggedAfter == 0:
			c.untaggedAfter = time.Duration(rule.UntaggedAfterHours) * time.Hour
		}
		p.rules = append(p.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}
