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
	// Interval is the time between scheduled collections; 0 turns the
	// schedule off (berth gc still runs on demand).
	Interval time.Duration `yaml:"interval"`
	// Grace is how long a blob link or stored blob that nothing
	// references is kept: longer than the longest push (first blob to
	// manifest) must take. It is also how long a manifest referencing
	// collected content is refused (the tombstone period).
	Grace time.Duration `yaml:"grace"`
}

// Bounds of the gc section. A grace period shorter than an hour could
// collect the blobs of a push still on its way to its manifest.
const (
	MinInterval = time.Minute
	MinGrace    = time.Hour
)

// DefaultConfig is the gc section's defaults: a collection a day, a day's
// grace.
func DefaultConfig() Config {
	return Config{Interval: 24 * time.Hour, Grace: 24 * time.Hour}
}

// Validate checks the section; errors name the keys (gc.grace).
func (c Config) Validate() error {
	var errs []error
	if c.Interval != 0 && c.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("gc.interval %v: want 0s (no schedule) or at least %v", c.Interval, MinInterval))
	}
	if c.Grace < MinGrace {
		errs = append(errs, fmt.Errorf("gc.grace %v: want at least %v", c.Grace, MinGrace))
	}
	return errors.Join(errs...)
}

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
	return Options{Grace: c.Grace, Policy: p}, nil
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
	// UntaggedAfter, when set, makes untagged manifests first pushed that
	// long ago eligible for collection (unless a live index or subject
	// keeps them). Unset, untagged manifests are kept.
	UntaggedAfter time.Duration `yaml:"untaggedAfter"`
}

// MinUntaggedAfter is the shortest untaggedAfter a configuration may set:
// the manifests of an index are pushed untagged before the index, and must
// outlive that push.
const MinUntaggedAfter = time.Hour

// Validate checks every rule as a configuration must have it; errors name
// the rule (retention[1].keepLast).
func (r Retention) Validate() error {
	_, err := r.Policy()
	errs := []error{err}
	for i, rule := range r {
		if rule.UntaggedAfter > 0 && rule.UntaggedAfter < MinUntaggedAfter {
			errs = append(errs, fmt.Errorf("retention[%d].untaggedAfter %v: want at least %v (an index's manifests are untagged until the index is pushed)", i, rule.UntaggedAfter, MinUntaggedAfter))
		}
	}
	return errors.Join(errs...)
}

// Policy compiles the rules. Unlike Validate, it takes any positive
// untaggedAfter, for callers in code that need a shorter one.
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
		if rule.UntaggedAfter < 0 {
			bad(i, "untaggedAfter %v: want a positive duration, or leave it out to keep untagged manifests", rule.UntaggedAfter)
		}
		p.rules = append(p.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}
