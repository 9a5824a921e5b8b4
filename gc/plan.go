package gc

import (
	"cmp"
	"regexp"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/metadata"
)

// Policy is a compiled list of retention rules (Retention.Policy). The nil
// Policy has no rules: every tag and every untagged manifest is kept.
type Policy struct {
	rules []compiledRule
}

type compiledRule struct {
	repos []*glob.Pattern
	// keepLast is the number of tags kept, or -1 for all.
	keepLast int
	keepTags []*regexp.Regexp
	// untaggedAfter is the age at which an untagged manifest becomes
	// eligible, or 0 for never.
	untaggedAfter time.Duration
}

// rule returns the first rule matching repo, or nil.
func (p *Policy) rule(repo string) *compiledRule {
	if p == nil {
		return nil
	}
	for i := range p.rules {
		for _, g := range p.rules[i].repos {
			if g.Match(repo) {
				return &p.rules[i]
			}
		}
	}
	return nil
}

// planner decides what to remove from one repository at a given time.
type planner struct {
	now   time.Time
	grace time.Duration
	rule  *compiledRule // nil: keep every tag and untagged manifest
}

// plan returns what to remove from st: the tags retention drops, the
// manifests no longer live, and the links no live manifest needs that are
// older than the grace period. See the package documentation for the
// rules.
func (p planner) plan(st *metadata.RepositoryState) *metadata.Collection {
	c := &metadata.Collection{}
	c.Tags = p.expiredTags(st.Tags)

	manifests := make(map[digest.Digest]*metadata.ManifestState, len(st.Manifests))
	referrers := map[digest.Digest][]digest.Digest{}
	for i := range st.Manifests {
		m := &st.Manifests[i]
		manifests[m.Digest] = m
		if m.Subject != "" {
			referrers[m.Subject] = append(referrers[m.Subject], m.Digest)
		}
	}

	// Roots: tagged manifests, and untagged ones not yet eligible.
	live := make(map[digest.Digest]bool, len(st.Manifests))
	var queue []digest.Digest
	mark := func(d digest.Digest) {
		if _, ok := manifests[d]; ok && !live[d] {
			live[d] = true
			queue = append(queue, d)
		}
	}
	expired := make(map[string]bool, len(c.Tags))
	for _, name := range c.Tags {
		expired[name] = true
	}
	for _, t := range st.Tags {
		if !expired[t.Name] {
			mark(t.Manifest)
		}
	}
	for _, m := range st.Manifests {
		if p.keepUntagged(&m) {
			mark(m.Digest)
		}
	}
	// Everything a live manifest keeps: the children of an index, and
	// the referrers of a subject.
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, child := range manifests[d].Manifests {
			mark(child)
		}
		for _, r := range referrers[d] {
			mark(r)
		}
	}

	needed := map[digest.Digest]bool{}
	for _, m := range st.Manifests {
		if !live[m.Digest] {
			c.Manifests = append(c.Manifests, m.Digest)
			continue
		}
		for _, b := range m.Blobs {
			needed[b] = true
		}
	}
	cutoff := p.now.Add(-p.grace)
	for _, b := range st.Blobs {
		if !needed[b.Digest] && b.LinkedAt.Before(cutoff) {
			c.Blobs = append(c.Blobs, b.Digest)
		}
	}
	return c
}

// keepUntagged reports whether an untagged manifest is kept for its own
// sake: no rule makes untagged manifests eligible, or it is too young.
func (p planner) keepUntagged(m *metadata.ManifestState) bool {
	if p.rule == nil || p.rule.untaggedAfter <= 0 {
		return true
	}
	return !m.CreatedAt.Before(p.now.Add(-p.rule.untaggedAfter))
}

// expiredTags returns the tags retention removes, in name order: with
// keepLast set, all but the keepLast most recently pushed tags that no
// keepTags pattern protects.
func (p planner) expiredTags(tags []metadata.TagState) []string {
	if p.rule == nil || p.rule.keepLast < 0 {
		return nil
	}
	var candidates []metadata.TagState
	for _, t := range tags {
		if !slices.ContainsFunc(p.rule.keepTags, func(re *regexp.Regexp) bool { return re.MatchString(t.Name) }) {
			candidates = append(candidates, t)
		}
	}
	if len(candidates) <= p.rule.keepLast {
		return nil
	}
	// Newest first; equal times by name, so the outcome does not depend
	// on the order the store listed them in.
	slices.SortFunc(candidates, func(a, b metadata.TagState) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	var expired []string
	for _, t := range candidates[p.rule.keepLast:] {
		expired = append(expired, t.Name)
	}
	slices.Sort(expired)
	return expired
}
