package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthhq/berth/auth"
	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
)

// Page sizes and bounds of the listings.
const (
	reposPage   = 50
	maxReposN   = 200
	searchMax   = 100
	maxQuery    = 256
	tagsPage    = 50
	maxTagScan  = 5000 // tags a filtered page looks through
	pushedScan  = 1000 // tags sorted by push time
	usagePage   = 100
	usageScan   = 10000 // repositories added up for a cache's stored bytes
	deliveriesN = 50
)

// ---- Repositories ----

type repoRow struct {
	Name, URL string
	Source    string // hosted, cache or virtual
	Registry  string // the configured registry, if any
	Upstream  bool   // a cache's name nothing of which is stored yet
}

type reposData struct {
	MayList  bool
	Query    string
	Searched bool
	Rows     []repoRow
	More     bool   // a search found more than it shows
	NextURL  string // the next page of the listing
	FirstURL string // the first page, when this is a later one
	N        int
}

func (u *UI) repositories(rq *req) {
	q := rq.r.URL.Query()
	d := reposData{MayList: u.mayList(rq), Query: strings.TrimSpace(q.Get("q")), N: reposPage}
	if s := q.Get("n"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			d.N = min(n, maxReposN)
		}
	}
	if !d.MayList {
		u.render(rq, http.StatusOK, "repositories", "Repositories", "repos", d)
		return
	}
	if len(d.Query) > maxQuery {
		u.fail(rq, http.StatusBadRequest, "Search too long", fmt.Sprintf("A search may be at most %d characters long.", maxQuery))
		return
	}
	ctx := rq.r.Context()
	visible := func(name string) bool { return u.mayPull(rq, name) }
	var names []string
	var err error
	if d.Query != "" {
		d.Searched = true
		names, err = u.opts.Resolver.Search(ctx, d.Query, searchMax+1, visible)
		if len(names) > searchMax {
			names, d.More = names[:searchMax], true
		}
	} else {
		last := q.Get("last")
		if len(last) > 1024 {
			u.fail(rq, http.StatusBadRequest, "Bad page", "That is not a position in the listing.")
			return
		}
		names, err = u.opts.Resolver.Catalog(ctx, last, d.N+1, visible)
		if len(names) > d.N {
			names = names[:d.N]
			d.NextURL = Prefix + query("last", names[len(names)-1], "n", nIf(d.N != reposPage, d.N))
		}
		if last != "" {
			d.FirstURL = Prefix + query("n", nIf(d.N != reposPage, d.N))
		}
	}
	if err != nil {
		u.contentError(rq, "The repository listing", err)
		return
	}
	for _, name := range names {
		d.Rows = append(d.Rows, u.repoRow(ctx, name))
	}
	u.render(rq, http.StatusOK, "repositories", "Repositories", "repos", d)
}

func nIf(cond bool, n int) string {
	if !cond {
		return ""
	}
	return strconv.Itoa(n)
}

// repoRow describes a listed name: where it comes from, and for a cache
// whether any of it is stored yet.
func (u *UI) repoRow(ctx context.Context, name string) repoRow {
	row := repoRow{Name: name, URL: repoURL(name), Source: connector.TypeHosted}
	if u.opts.Connectors == nil {
		return row
	}
	row.Registry, row.Source = u.opts.Connectors.Owner(name)
	if row.Source == connector.TypeCache {
		_, err := u.opts.Meta.Tags(ctx, name, "", 0)
		row.Upstream = errors.Is(err, metadata.ErrRepositoryNotFound)
	}
	return row
}

// ---- Repository ----

type pullCmd struct{ Tool, Cmd string }

type tagRow struct {
	Name, URL  string
	Stored     bool // metadata knows the tag (else only the upstream lists it)
	Digest     string
	DigestURL  string
	MediaType  string
	Kind       string
	Size       int64
	Partial    bool
	Platforms  []string
	Created    *time.Time
	Pushed     time.Time
	DeleteURL  string
	ShortDigst string
}

type repoData struct {
	Name, Source, Registry string
	Rows                   []tagRow
	Filter, Sort           string
	NextURL, FirstURL      string
	PrevPage, NextPage     string // pushed-time pages
	Stale, Truncated       bool
	Scanned                int
	Pull                   []pullCmd
	Deleted                string
	MayDelete              bool
}

func (u *UI) repository(rq *req, name string) {
	if !registry.ValidName(name) {
		u.fail(rq, http.StatusBadRequest, "Invalid repository name", fmt.Sprintf("%q is not a repository name.", name))
		return
	}
	if !u.mayPull(rq, name) {
		u.refuse(rq, "this repository")
		return
	}
	q := rq.r.URL.Query()
	d := repoData{Name: name, Filter: strings.TrimSpace(q.Get("q")), Sort: q.Get("sort"), Deleted: q.Get("deleted"),
		MayDelete: u.mayDelete(rq, name), Source: connector.TypeHosted}
	if len(d.Filter) > 128 {
		d.Filter = d.Filter[:128]
	}
	if d.Sort != "pushed" {
		d.Sort = "name"
	}
	if u.opts.Connectors != nil {
		d.Registry, d.Source = u.opts.Connectors.Owner(name)
	}
	ctx := rq.r.Context()
	repo, err := u.opts.Resolver.Resolve(name)
	if err != nil {
		u.contentError(rq, "Repository "+name, err)
		return
	}
	stored := u.storedNames(name)
	match := func(t string) bool {
		return d.Filter == "" || strings.Contains(strings.ToLower(t), strings.ToLower(d.Filter))
	}
	var tags []string
	if d.Sort == "name" {
		last := q.Get("last")
		if len(last) > 128 {
			last = ""
		}
		cursor := last
		for d.Scanned < maxTagScan && len(tags) <= tagsPage {
			tl, err := repo.Tags(ctx, cursor, 500)
			if err != nil {
				u.contentError(rq, "Repository "+name, err)
				return
			}
			d.Stale = d.Stale || tl.Stale
			for _, t := range tl.Tags {
				if match(t) && len(tags) <= tagsPage {
					tags = append(tags, t)
				}
			}
			d.Scanned += len(tl.Tags)
			if len(tl.Tags) < 500 {
				break
			}
			cursor = tl.Tags[len(tl.Tags)-1]
		}
		if len(tags) > tagsPage {
			tags = tags[:tagsPage]
			d.NextURL = repoURL(name) + query("q", d.Filter, "last", tags[len(tags)-1])
		} else if d.Scanned >= maxTagScan {
			d.NextURL = repoURL(name) + query("q", d.Filter, "last", cursor)
			d.Truncated = true
		}
		if last != "" {
			d.FirstURL = repoURL(name) + query("q", d.Filter)
		}
	} else {
		tl, err := repo.Tags(ctx, "", pushedScan+1)
		if err != nil {
			u.contentError(rq, "Repository "+name, err)
			return
		}
		d.Stale = tl.Stale
		all := tl.Tags
		if len(all) > pushedScan {
			all, d.Truncated = all[:pushedScan], true
		}
		for _, t := range all {
			if match(t) {
				tags = append(tags, t)
			}
		}
	}
	infos := u.tagInfos(ctx, stored, tags)
	if d.Sort == "pushed" {
		sort.SliceStable(tags, func(i, j int) bool {
			a, b := infos[tags[i]], infos[tags[j]]
			return a.PushedAt.After(b.PushedAt)
		})
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 1)
		from := (page - 1) * tagsPage
		if from > len(tags) {
			from = len(tags)
		}
		if len(tags) > from+tagsPage {
			d.NextPage = repoURL(name) + query("q", d.Filter, "sort", "pushed", "page", strconv.Itoa(page+1))
		}
		if page > 1 {
			d.PrevPage = repoURL(name) + query("q", d.Filter, "sort", "pushed", "page", strconv.Itoa(page-1))
		}
		tags = tags[from:min(len(tags), from+tagsPage)]
	}
	for _, t := range tags {
		row := tagRow{Name: t, URL: manifestURL(name, t)}
		if d.MayDelete {
			row.DeleteURL = Prefix + "delete" + query("repo", name, "ref", t)
		}
		if ti, ok := infos[t]; ok {
			row.Stored, row.Pushed = true, ti.PushedAt
			row.Digest, row.DigestURL = ti.Digest.String(), manifestURL(name, ti.Digest.String())
			if m, err := u.opts.Meta.GetManifest(ctx, ti.repo, ti.Digest); err == nil {
				s := u.summarize(ctx, name, stored, m)
				row.Kind, row.MediaType, row.Size, row.Partial, row.Platforms, row.Created = s.Kind, s.Type, s.Size, s.Partial, s.Platforms, s.Created
			}
		}
		d.Rows = append(d.Rows, row)
	}
	ref := "latest"
	if len(d.Rows) > 0 && !slicesContainsTag(d.Rows, "latest") {
		ref = d.Rows[0].Name
	}
	d.Pull = pullCommands(hostOf(rq.r), name, ":"+ref, d.Rows != nil && len(d.Rows) > 0 && d.Rows[0].Kind == kindArtifact)
	u.render(rq, http.StatusOK, "repository", name, "repos", d)
}

func slicesContainsTag(rows []tagRow, t string) bool {
	for _, r := range rows {
		if r.Name == t {
			return true
		}
	}
	return false
}

// pullCommands are the commands that pull name with ref (":tag" or
// "@digest") from host.
func pullCommands(host, name, ref string, artifact bool) []pullCmd {
	img := host + "/" + name + ref
	cmds := []pullCmd{
		{"docker", "docker pull " + img},
		{"podman", "podman pull " + img},
		{"crane", "crane pull " + img + " " + lastSegment(name) + ".tar"},
		{"oras", "oras pull " + img},
	}
	if artifact {
		cmds = append(cmds[3:], cmds[:3]...)
	}
	return cmds
}

func lastSegment(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

// ---- Manifest ----

type descRow struct {
	MediaType   string
	Digest      string
	URL         string // the page of a child manifest or referrer
	Size        int64
	Platform    string
	Attestation bool
	Annotations []kv
}

type kv struct{ Key, Value string }

func kvs(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, kv{k, m[k]})
	}
	return out
}

type referrerNode struct {
	Label, ArtifactType string
	Digest, URL         string
	Size                int64
	Annotations         []kv
	Children            []*referrerNode
}

type referrerGroup struct {
	Label string
	Nodes []*referrerNode
}

type manifestData struct {
	Name, Ref, Digest string
	RepoURL           string
	MediaType, Kind   string
	ArtifactType      string
	Size, Total       int64
	Created           time.Time
	Stale             bool
	Children          []descRow
	Config            *descRow
	ConfigInfo        *imageConfig
	ConfigNote        string
	Layers            []descRow
	Annotations       []kv
	Labels            []kv
	Subject           *descRow
	Referrers         []referrerGroup
	ReferrersMore     bool
	Pull              []pullCmd
	Raw               string
	DeleteURL         string
	Platform          string
}

func (u *UI) manifest(rq *req, rest string) {
	name, ref, ok := strings.Cut(rest, "@")
	if !ok || !registry.ValidName(name) {
		u.fail(rq, http.StatusBadRequest, "Invalid reference", "A manifest page is /ui/m/NAME@TAG or /ui/m/NAME@DIGEST.")
		return
	}
	isDigest := strings.Contains(ref, ":")
	if isDigest {
		if err := storage.ValidateDigest(digest.Digest(ref)); err != nil {
			u.fail(rq, http.StatusBadRequest, "Invalid digest", fmt.Sprintf("%q is not a digest: %v.", ref, err))
			return
		}
	} else if !registry.ValidTag(ref) {
		u.fail(rq, http.StatusBadRequest, "Invalid tag", fmt.Sprintf("%q is not a tag.", ref))
		return
	}
	if !u.mayPull(rq, name) {
		u.refuse(rq, "this repository")
		return
	}
	ctx := rq.r.Context()
	repo, err := u.opts.Resolver.Resolve(name)
	if err != nil {
		u.contentError(rq, name+"@"+ref, err)
		return
	}
	m, err := repo.Manifest(ctx, ref)
	if err != nil {
		u.contentError(rq, name+"@"+ref, err)
		return
	}
	doc, err := parseDoc(m.Content)
	if err != nil {
		u.fail(rq, http.StatusBadGateway, "Unreadable manifest", "The manifest is not valid JSON.")
		return
	}
	d := manifestData{Name: name, Ref: ref, Digest: m.Digest.String(), RepoURL: repoURL(name), MediaType: typeLabel(m.MediaType),
		Kind: kindOf(m.MediaType, doc), ArtifactType: doc.ArtifactType, Size: m.Size, Total: m.Size, Created: m.CreatedAt, Stale: m.Stale,
		Annotations: kvs(doc.Annotations)}
	if d.ArtifactType == "" && d.Kind == kindArtifact && doc.Config != nil {
		d.ArtifactType = doc.Config.MediaType
	}
	if u.mayDelete(rq, name) {
		d.DeleteURL = Prefix + "delete" + query("repo", name, "ref", d.Digest)
	}
	if m.Size <= maxRawManifest {
		var pretty strings.Builder
		var v any
		if json.Unmarshal(m.Content, &v) == nil {
			enc := json.NewEncoder(&pretty)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			_ = enc.Encode(v)
			d.Raw = pretty.String()
		}
	}
	for _, c := range doc.Manifests {
		d.Children = append(d.Children, descRow{MediaType: typeLabel(c.MediaType), Digest: c.Digest.String(), URL: manifestURL(name, c.Digest.String()),
			Size: c.Size, Platform: platformOf(c.Platform), Attestation: attestationChild(c), Annotations: kvs(c.Annotations)})
	}
	if doc.Config != nil {
		d.Config = &descRow{MediaType: doc.Config.MediaType, Digest: doc.Config.Digest.String(), Size: doc.Config.Size}
		d.Total += doc.Config.Size
		if d.Kind == kindImage {
			c, err := u.readConfig(ctx, name, doc.Config.Digest, maxConfig)
			switch {
			case errors.Is(err, errTooLarge):
				d.ConfigNote = fmt.Sprintf("The config is larger than %s and is not shown.", gc.FormatBytes(maxConfig))
			case err != nil:
				d.ConfigNote = "The config could not be read: " + shortError(err)
			default:
				d.ConfigInfo, d.Labels = c, kvs(c.Config.Labels)
				d.Platform = platformOf(&ocispec.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant})
			}
		}
	}
	for _, l := range doc.Layers {
		d.Layers = append(d.Layers, descRow{MediaType: l.MediaType, Digest: l.Digest.String(), Size: l.Size, Annotations: kvs(l.Annotations)})
		d.Total += l.Size
	}
	if doc.Subject != nil {
		d.Subject = &descRow{MediaType: typeLabel(doc.Subject.MediaType), Digest: doc.Subject.Digest.String(),
			URL: manifestURL(name, doc.Subject.Digest.String()), Size: doc.Subject.Size}
	}
	d.Referrers, d.ReferrersMore = u.referrers(ctx, name, repo, m.Digest)
	at := "@" + d.Digest
	if !isDigest {
		at = ":" + ref
	}
	d.Pull = pullCommands(hostOf(rq.r), name, at, d.Kind == kindArtifact)
	u.render(rq, http.StatusOK, "manifest", name+at, "repos", d)
}

// shortError describes a read failure without internal detail.
func shortError(err error) string {
	var re *registry.Error
	if errors.As(err, &re) {
		if re.Message != "" {
			return re.Message
		}
		return re.Code.Message
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return "not in the repository"
	}
	return "read failed"
}

// referrers builds the tree of what refers to d (and to those, to a
// bounded depth), grouped at the top by kind. more reports that the tree
// was cut at its bounds.
func (u *UI) referrers(ctx context.Context, name string, repo registry.Repository, d digest.Digest) ([]referrerGroup, bool) {
	budget := maxReferrers
	more := false
	seen := map[digest.Digest]bool{d: true}
	var walk func(d digest.Digest, depth int) []*referrerNode
	walk = func(d digest.Digest, depth int) []*referrerNode {
		if depth > maxReferrerDepth {
			more = true
			return nil
		}
		page, has, err := repo.Referrers(ctx, d, metadata.ReferrersQuery{Limit: budget + 1})
		if err != nil {
			return nil
		}
		if has || len(page) > budget {
			more = true
		}
		var out []*referrerNode
		for _, r := range page {
			if budget <= 0 {
				more = true
				break
			}
			if seen[r.Digest] {
				continue
			}
			seen[r.Digest] = true
			budget--
			out = append(out, &referrerNode{Label: artifactLabel(r.ArtifactType), ArtifactType: r.ArtifactType,
				Digest: r.Digest.String(), URL: manifestURL(name, r.Digest.String()), Size: r.Size, Annotations: kvs(r.Annotations)})
		}
		for _, n := range out {
			n.Children = walk(digest.Digest(n.Digest), depth+1)
		}
		return out
	}
	nodes := walk(d, 1)
	groups := map[string]*referrerGroup{}
	var order []string
	for _, n := range nodes {
		g := groups[n.Label]
		if g == nil {
			g = &referrerGroup{Label: n.Label}
			groups[n.Label] = g
			order = append(order, n.Label)
		}
		g.Nodes = append(g.Nodes, n)
	}
	sort.Strings(order)
	out := make([]referrerGroup, 0, len(order))
	for _, l := range order {
		out = append(out, *groups[l])
	}
	return out, more
}

// ---- Registries ----

type registryRow struct {
	connector.RegistryInfo
	Implicit bool
	Cache    *cacheView
}

// cacheView is what the registries page shows of a cache's upstream. The
// fields after StoredBytes are filled from connector.Status when it
// carries them; the page shows each only when it is set.
type cacheView struct {
	connector.Status
	StoredBytes   int64
	StoredRepos   int
	StoredPartial bool
	// Provider names the kind of upstream (Docker Hub, GHCR, a
	// distribution registry).
	Provider string
	// HasRateLimit reports that the upstream announced a rate limit:
	// RateLimitRemaining is what it has left, RateLimit its size (0 when
	// unknown).
	HasRateLimit       bool
	RateLimitRemaining int64
	RateLimit          int64
	// SyncStatus says how the last sync of the cache went.
	SyncStatus string
	SyncAt     *time.Time
}

// statusView maps a cache's status to what the page shows; new fields of
// connector.Status (provider, rate limit, sync) are mapped here.
func statusView(s connector.Status) *cacheView {
	v := &cacheView{Status: s, Provider: s.Provider}
	if rl := s.RateLimit; rl != nil {
		v.HasRateLimit = true
		v.RateLimitRemaining, v.RateLimit = int64(rl.Remaining), int64(rl.Limit)
	}
	if sy := s.Sync; sy != nil {
		switch {
		case sy.Running:
			v.SyncStatus = fmt.Sprintf("running: %d of %d tags", sy.Done, sy.Total)
			v.SyncAt = sy.LastStart
		case sy.LastResult != "":
			v.SyncStatus = fmt.Sprintf("%s (%d tags, %d failed)", sy.LastResult, sy.Tags, sy.Failed)
			v.SyncAt = sy.LastEnd
		default:
			v.SyncStatus = "not run yet"
			v.SyncAt = sy.NextRun
		}
	}
	return v
}

type registriesData struct {
	MayList bool
	Rows    []registryRow
}

func (u *UI) registries(rq *req) {
	d := registriesData{MayList: u.mayList(rq)}
	if !d.MayList {
		u.refuse(rq, "the registries")
		return
	}
	ctx := rq.r.Context()
	implicit := true
	var statuses map[string]connector.Status
	if u.opts.Connectors != nil {
		statuses = map[string]connector.Status{}
		for _, s := range u.opts.Connectors.Status() {
			statuses[s.Name] = s
		}
		for _, ri := range u.opts.Connectors.Registries() {
			row := registryRow{RegistryInfo: ri}
			if ri.Prefix == "" {
				implicit = false
			}
			if s, ok := statuses[ri.Name]; ok && ri.Type == connector.TypeCache {
				row.Cache = statusView(s)
				row.Cache.StoredBytes, row.Cache.StoredRepos, row.Cache.StoredPartial = u.cachedBytes(ctx, ri)
			}
			d.Rows = append(d.Rows, row)
		}
	}
	if implicit {
		d.Rows = append(d.Rows, registryRow{RegistryInfo: connector.RegistryInfo{Type: connector.TypeHosted}, Implicit: true})
	}
	u.render(rq, http.StatusOK, "registries", "Registries", "registries", d)
}

// cachedBytes adds up what the repositories of cache ri hold, reading at
// most usageScan repositories, and remembers the answer for a minute.
func (u *UI) cachedBytes(ctx context.Context, ri connector.RegistryInfo) (int64, int, bool) {
	if u.browser == nil {
		return 0, 0, true
	}
	return u.usage.get(ri.Name, func() (int64, int, bool) {
		var bytes int64
		var repos, scanned int
		last := strings.TrimSuffix(ri.Prefix, "/")
		for scanned < usageScan {
			page, err := u.browser.RepositoryUsage(ctx, last, metadata.MaxUsagePage)
			if err != nil {
				return bytes, repos, true
			}
			for _, ru := range page {
				if !strings.HasPrefix(ru.Name, ri.Prefix) {
					if ru.Name > ri.Prefix {
						return bytes, repos, false
					}
					continue
				}
				if reg, _ := u.opts.Connectors.Owner(ru.Name); reg == ri.Name {
					bytes += ru.BlobBytes + ru.ManifestBytes
					repos++
				}
			}
			scanned += len(page)
			if len(page) < metadata.MaxUsagePage {
				return bytes, repos, false
			}
			last = page[len(page)-1].Name
		}
		return bytes, repos, true
	})
}

// ---- Operations ----

type opsData struct {
	GC            bool
	GCRuns        []gc.RunSummary
	GCInterval    time.Duration
	LastGC        time.Time
	Webhooks      bool
	Deliveries    []WebhookDelivery
	DeliveriesErr string
	Usage         []metadata.RepositoryUsage
	UsageNext     string
	UsageFirst    string
	NoUsage       bool
}

func (u *UI) operations(rq *req) {
	if !u.administers(rq) {
		u.refuse(rq, "the operations page (administrators only)")
		return
	}
	ctx := rq.r.Context()
	d := opsData{GC: u.opts.GCRuns != nil, GCInterval: u.opts.GCInterval, Webhooks: u.opts.WebhookDeliveries != nil}
	if u.opts.GCRuns != nil {
		d.GCRuns = u.opts.GCRuns()
	}
	if u.opts.LastGC != nil {
		if t, err := u.opts.LastGC(ctx); err == nil {
			d.LastGC = t
		}
	}
	if u.opts.WebhookDeliveries != nil {
		var err error
		if d.Deliveries, err = u.opts.WebhookDeliveries(ctx, deliveriesN); err != nil {
			d.DeliveriesErr = shortError(err)
		}
	}
	if u.browser == nil {
		d.NoUsage = true
	} else {
		last := rq.r.URL.Query().Get("last")
		if len(last) > 1024 {
			last = ""
		}
		usage, err := u.browser.RepositoryUsage(ctx, last, usagePage+1)
		if err != nil {
			u.contentError(rq, "Storage usage", err)
			return
		}
		if len(usage) > usagePage {
			usage = usage[:usagePage]
			d.UsageNext = Prefix + "ops" + query("last", usage[len(usage)-1].Name) + "#usage"
		}
		if last != "" {
			d.UsageFirst = Prefix + "ops#usage"
		}
		d.Usage = usage
	}
	u.render(rq, http.StatusOK, "ops", "Operations", "ops", d)
}

// ---- Sign-in ----

type loginData struct {
	Error     string
	User      string
	Next      string
	Available bool
}

func (u *UI) login(rq *req) {
	d := loginData{Next: safeNext(rq.r.URL.Query().Get("next")), Available: u.opts.Gate != nil && u.opts.Gate.PasswordLogin()}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		u.render(rq, http.StatusOK, "login", "Sign in", "login", d)
		return
	case http.MethodPost:
	default:
		u.fail(rq, http.StatusMethodNotAllowed, "Not allowed", "Sign in with the form.")
		return
	}
	if !u.checkForm(rq) {
		return
	}
	d.User, d.Next = rq.r.PostForm.Get("user"), safeNext(rq.r.PostForm.Get("next"))
	if !d.Available {
		u.render(rq, http.StatusBadRequest, "login", "Sign in", "login", d)
		return
	}
	id, err := u.opts.Gate.Login(rq.r, d.User, rq.r.PostForm.Get("password"))
	var re *auth.RetryError
	switch {
	case errors.As(err, &re):
		secs := max(1, int(re.Wait.Round(time.Second)/time.Second))
		rq.w.Header().Set("Retry-After", strconv.Itoa(secs))
		d.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %d seconds.", secs)
		u.render(rq, http.StatusTooManyRequests, "login", "Sign in", "login", d)
		return
	case err != nil:
		d.Error = "Wrong user name or password."
		u.render(rq, http.StatusUnauthorized, "login", "Sign in", "login", d)
		return
	}
	fp, _ := u.opts.Gate.Fingerprint(id.Name)
	// A new session id at sign-in: a session fixed before cannot follow.
	u.sessions.set(rq.w, rq.r, u.sessions.fresh(id.Name, fp))
	http.Redirect(rq.w, rq.r, d.Next, http.StatusSeeOther)
}

func (u *UI) logout(rq *req) {
	if !u.checkForm(rq) {
		return
	}
	u.sessions.set(rq.w, rq.r, u.sessions.fresh("", ""))
	http.Redirect(rq.w, rq.r, Prefix, http.StatusSeeOther)
}

// safeNext keeps a return address only when it is a page of the UI.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(path.Clean(u.Path)+"/", Prefix) {
		return Prefix
	}
	return next
}

// checkForm parses a posted form and checks that it comes from a page of
// this UI in this session: the CSRF token, and the browser's own word on
// where the request comes from when it gives it.
func (u *UI) checkForm(rq *req) bool {
	r := rq.r
	if err := r.ParseForm(); err != nil {
		u.fail(rq, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return false
	}
	site := r.Header.Get("Sec-Fetch-Site")
	crossSite := site != "" && site != "same-origin" && site != "none"
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if ou, err := url.Parse(o); err != nil || ou.Host != r.Host {
			crossSite = true
		}
	}
	if crossSite || !u.sessions.checkCSRF(rq.sess, r.PostForm.Get("csrf")) {
		u.fail(rq, http.StatusForbidden, "Form expired", "The form did not come from this session. Reload the page and try again.")
		return false
	}
	return true
}

// ---- Delete ----

type deleteData struct {
	Repo, Ref string
	IsDigest  bool
	RepoURL   string
	Error     string
	Code      string
}

func (u *UI) delete(rq *req) {
	r := rq.r
	var repo, ref string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		repo, ref = r.URL.Query().Get("repo"), r.URL.Query().Get("ref")
	case http.MethodPost:
		if !u.checkForm(rq) {
			return
		}
		repo, ref = r.PostForm.Get("repo"), r.PostForm.Get("ref")
	default:
		u.fail(rq, http.StatusMethodNotAllowed, "Not allowed", "Delete with the form.")
		return
	}
	isDigest := strings.Contains(ref, ":")
	if !registry.ValidName(repo) || (isDigest && storage.ValidateDigest(digest.Digest(ref)) != nil) || (!isDigest && !registry.ValidTag(ref)) {
		u.fail(rq, http.StatusBadRequest, "Invalid reference", "Name a repository and a tag or digest to delete.")
		return
	}
	if !u.mayDelete(rq, repo) {
		u.refuse(rq, "deletions in this repository")
		return
	}
	d := deleteData{Repo: repo, Ref: ref, IsDigest: isDigest, RepoURL: repoURL(repo)}
	if r.Method != http.MethodPost {
		u.render(rq, http.StatusOK, "delete", "Delete "+repo+refSep(ref)+ref, "repos", d)
		return
	}
	status, e := u.sendDelete(rq, repo, ref)
	if status == http.StatusAccepted {
		http.Redirect(rq.w, r, repoURL(repo)+query("deleted", ref), http.StatusSeeOther)
		return
	}
	d.Code, d.Error = e.Code, e.Message
	u.render(rq, status, "delete", "Delete "+repo+refSep(ref)+ref, "repos", d)
}

func refSep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

// wireError is the first error of a registry answer.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// sendDelete sends DELETE /v2/NAME/manifests/REF to the registry as the
// caller: the registry authorises it with its own hook and applies its
// rules, exactly as for a client's delete.
func (u *UI) sendDelete(rq *req, repo, ref string) (int, wireError) {
	ctx := auth.WithIdentity(rq.r.Context(), rq.id)
	target := "/v2/" + repo + "/manifests/" + ref
	in, err := http.NewRequestWithContext(ctx, http.MethodDelete, target, nil)
	if err != nil {
		return http.StatusInternalServerError, wireError{Code: "UNKNOWN", Message: err.Error()}
	}
	in.RemoteAddr, in.Host, in.TLS = rq.r.RemoteAddr, rq.r.Host, rq.r.TLS
	rec := &recorder{header: http.Header{}}
	u.opts.API.ServeHTTP(rec, in)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status == http.StatusAccepted {
		u.log.Info("ui: deleted", "repo", repo, "ref", ref, "user", rq.id.Name)
		return rec.status, wireError{}
	}
	var body struct {
		Errors []wireError `json:"errors"`
	}
	if json.Unmarshal(rec.body, &body) != nil || len(body.Errors) == 0 {
		return rec.status, wireError{Code: strconv.Itoa(rec.status), Message: http.StatusText(rec.status)}
	}
	return rec.status, body.Errors[0]
}

// recorder is the ResponseWriter of a request the UI sends to the
// registry: it keeps the status and at most maxRecorded bytes of the body.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

const maxRecorded = 64 << 10

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if room := maxRecorded - len(r.body); room > 0 {
		r.body = append(r.body, p[:min(len(p), room)]...)
	}
	return len(p), nil
}
