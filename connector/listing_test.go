package connector

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func TestCatalogMergesEverySource(t *testing.T) {
	t.Parallel()
	s := newVirtualSetup(t, nodeOptions{})
	im := newImage(t, 10)
	s.b.push("local/app", "1", im)
	s.b.push("local/zeta", "1", im)
	s.b.push("elsewhere/x", "1", im) // the implicit hosted registry
	for _, n := range []string{"app", "base", "library/alpine"} {
		s.up1.push(n, "1", im)
	}
	for _, n := range []string{"app", "tool/cli"} {
		s.up2.push(n, "1", im)
	}
	s.b.pull("hub/app", "1", im) // cached: stored too
	want := []string{
		"elsewhere/x",
		"local/app", "local/zeta",
		"hub/app", "hub/base", "hub/library/alpine",
		"ghcr/app", "ghcr/tool/cli",
		// all/ over local, hub, ghcr
		"all/app", "all/zeta", "all/base", "all/library/alpine", "all/tool/cli",
		// ro/ over hub
		"ro/app", "ro/base", "ro/library/alpine",
	}
	sort.Strings(want)

	r := s.b.must(http.StatusOK, "GET", "/v2/_catalog", nil)
	if got := repos(t, r.body); !slices.Equal(got, want) {
		t.Fatalf("catalog\n got %v\nwant %v", got, want)
	}
	for _, n := range []int{1, 2, 3, 5, 7} {
		var got []string
		path := "/v2/_catalog?n=" + strconv.Itoa(n)
		for pages := 0; path != ""; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("n=%d: pagination does not end", n)
			}
			r := s.b.must(http.StatusOK, "GET", path, nil)
			page := repos(t, r.body)
			if len(page) > n {
				t.Fatalf("n=%d: page of %d", n, len(page))
			}
			got = append(got, page...)
			path = nextLink(t, r.header.Get("Link"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: pages give\n %v\nwant %v", n, got, want)
		}
	}
	r = s.b.must(http.StatusOK, "GET", "/v2/_catalog?last=all/zeta&n=3", nil)
	if got := repos(t, r.body); !slices.Equal(got, []string{"elsewhere/x", "ghcr/app", "ghcr/tool/cli"}) {
		t.Errorf("after all/zeta: %v", got)
	}

	// Search covers the same names.
	r = s.b.must(http.StatusOK, "GET", "/v1/search?q=alpine", nil)
	var sr struct {
		Results []struct{ Name string }
	}
	if err := json.Unmarshal(r.body, &sr); err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, x := range sr.Results {
		found = append(found, x.Name)
	}
	if !slices.Equal(found, []string{"all/library/alpine", "hub/library/alpine", "ro/library/alpine"}) {
		t.Errorf("search alpine: %v", found)
	}
	r = s.b.must(http.StatusOK, "GET", "/v1/search?q=ZETA", nil)
	if !strings.Contains(string(r.body), `"local/zeta"`) || !strings.Contains(string(r.body), `"all/zeta"`) {
		t.Errorf("search ZETA: %s", r.body)
	}
}

func repos(t *testing.T, body []byte) []string {
	t.Helper()
	var doc struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return doc.Repositories
}

func nextLink(t *testing.T, link string) string {
	t.Helper()
	if link == "" {
		return ""
	}
	start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if start < 0 || end < start || !strings.Contains(link, `rel="next"`) {
		t.Fatalf("Link %q", link)
	}
	u, err := url.Parse(link[start+1 : end])
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}
