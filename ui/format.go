package ui

import (
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/gc"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"bytes": gc.FormatBytes,
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		}
		return ""
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short": func(d string) string {
		if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
			return hex[:12]
		}
		return d
	},
	"join":  strings.Join,
	"words": func(s []string) string { return strings.Join(s, " ") },
	"dur": func(d time.Duration) string {
		if d <= 0 {
			return ""
		}
		return d.Round(time.Millisecond).String()
	},
	"since": func(a, b time.Time) string { return b.Sub(a).Round(time.Millisecond).String() },
	"ms":    func(f float64) string { return fmt.Sprintf("%.1f ms", f) },
}

// pageNames are the pages; each is parsed with the layout.
var pageNames = []string{"repositories", "repository", "manifest", "registries", "ops", "login", "delete", "message"}

func (u *UI) parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// usageMemo remembers, per cache, what its repositories hold, so that the
// registries page adds it up at most once a minute.
type usageMemo struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]usageEntry
}

type usageEntry struct {
	bytes   int64
	repos   int
	partial bool
	at      time.Time
}

// get returns the remembered answer for key, or computes it. One
// computation runs at a time.
func (m *usageMemo) get(key string, compute func() (int64, int, bool)) (int64, int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[key]; ok && m.now().Sub(e.at) < m.ttl {
		return e.bytes, e.repos, e.partial
	}
	b, r, p := compute()
	if m.m == nil {
		m.m = map[string]usageEntry{}
	}
	m.m[key] = usageEntry{bytes: b, repos: r, partial: p, at: m.now()}
	return b, r, p
}
