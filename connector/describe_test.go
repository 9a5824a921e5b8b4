package connector

import (
	"slices"
	"testing"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	up := newNode(t, nil, nodeOptions{}, nil)
	cfg := Config{
		{Name: "local", Type: TypeHosted, Prefix: "local/"},
		{Name: "hub", Type: TypeCache, Prefix: "hub/", Upstream: Upstream{URL: up.url(), Password: "s3cret", Username: "u"}},
		{Name: "all", Type: TypeVirtual, Prefix: "all/", Members: []string{"local", "hub"}, PushTo: "local"},
	}
	n := newNode(t, cfg, nodeOptions{}, nil)

	got := n.conn.Registries()
	if len(got) != 3 || got[0].Name != "all" || got[1].Name != "hub" || got[2].Name != "local" {
		t.Fatalf("Registries = %+v, want all, hub, local", got)
	}
	if all := got[0]; all.Type != TypeVirtual || all.Prefix != "all/" || !slices.Equal(all.Members, []string{"local", "hub"}) || all.PushTo != "local" {
		t.Errorf("virtual entry = %+v", all)
	}
	if hub := got[1]; hub.Type != TypeCache || hub.Upstream != up.url() {
		t.Errorf("cache entry = %+v, want upstream %s", hub, up.url())
	}

	for _, tc := range []struct {
		name, reg, typ string
		stored         []string
	}{
		{"local/app", "local", TypeHosted, []string{"local/app"}},
		{"hub/library/alpine", "hub", TypeCache, []string{"hub/library/alpine"}},
		{"all/x/y", "all", TypeVirtual, []string{"local/x/y", "hub/x/y"}},
		{"elsewhere", "", TypeHosted, []string{"elsewhere"}},
	} {
		reg, typ := n.conn.Owner(tc.name)
		if reg != tc.reg || typ != tc.typ {
			t.Errorf("Owner(%s) = %q, %q; want %q, %q", tc.name, reg, typ, tc.reg, tc.typ)
		}
		if got := n.conn.StoredNames(tc.name); !slices.Equal(got, tc.stored) {
			t.Errorf("StoredNames(%s) = %q, want %q", tc.name, got, tc.stored)
		}
	}
}
