package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// nextLink parses a Link header of rel="next" and returns its target, or
// "" when there is none.
func nextLink(t *testing.T, res *response) string {
	t.Helper()
	l := res.Header.Get("Link")
	if l == "" {
		return ""
	}
	target, rel, ok := strings.Cut(l, ">; ")
	if !ok || !strings.HasPrefix(target, "<") || rel != `rel="next"` {
		t.Fatalf("malformed Link %q", l)
	}
	return target[1:]
}

func TestTagsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	img := e.pushImage("lib/app", "", MediaTypeOCIManifest, "t")
	tags := []string{"latest", "v1", "v10", "v2", "V2", "a", "A", "_x", "1.0", "1.0-rc", "z.z", "a-b", "a_b"}
	for _, tag := range tags {
		e.pushManifest("lib/app", tag, MediaTypeOCIManifest, img.Body)
	}
	sorted := append([]string{}, tags...)
	sort.Strings(sorted)

	res := e.get("/v2/lib/app/tags/list")
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Content-Type", "application/json")
	wantHeader(t, res, "Link", "")
	if got := tagList(t, e, "lib/app"); !reflect.DeepEqual(got, sorted) {
		t.Errorf("tags = %v, want %v", got, sorted)
	}

	// Walking pages of every size by following Link.
	for n := 1; n <= len(tags)+1; n++ {
		t.Run("n="+strconv.Itoa(n), func(t *testing.T) {
			e := e.with(t)
			var all []string
			p := "/v2/lib/app/tags/list?n=" + strconv.Itoa(n)
			for pages := 0; p != ""; pages++ {
				if pages > len(tags)+1 {
					t.Fatal("pagination does not end")
				}
				res := e.get(p)
				wantStatus(t, res, http.StatusOK)
				var tl struct {
					Tags []string `json:"tags"`
				}
				if err := json.Unmarshal(res.Body, &tl); err != nil {
					t.Fatal(err)
				}
				if len(tl.Tags) > n {
					t.Fatalf("page of %d tags for n=%d", len(tl.Tags), n)
				}
				all = append(all, tl.Tags...)
				next := nextLink(t, res)
				hasMore := len(all) < len(sorted)
				if (next != "") != hasMore {
					t.Fatalf("after %d of %d tags: Link %q", len(all), len(sorted), next)
				}
				if next != "" {
					last := tl.Tags[len(tl.Tags)-1]
					want := "/v2/lib/app/tags/list?" + url.Values{"last": {last}, "n": {strconv.Itoa(n)}}.Encode()
					if next != want {
						t.Fatalf("Link target %q, want %q", next, want)
					}
					wantHeader(t, res, "Link", "<"+want+`>; rel="next"`)
				}
				p = next
			}
			if !reflect.DeepEqual(all, sorted) {
				t.Errorf("paged tags = %v, want %v", all, sorted)
			}
		})
	}

	for _, tc := range []struct {
		query string
		want  []string
		link  bool
	}{
		{"?n=0", []string{}, false},
		{"?n=2&last=a", []string{"a-b", "a_b"}, true},
		{"?last=v10", []string{"v2", "z.z"}, false},
		{"?last=zzz", []string{}, false},
		{"?last=a0", []string{"a_b", "latest", "v1", "v10", "v2", "z.z"}, false},
		{"?n=6&last=a0", []string{"a_b", "latest", "v1", "v10", "v2", "z.z"}, false},
		{"?n=5&last=a0", []string{"a_b", "latest", "v1", "v10", "v2"}, true},
		{"?n=100000", sorted, false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e := e.with(t)
			res := e.get("/v2/lib/app/tags/list" + tc.query)
			wantStatus(t, res, http.StatusOK)
			var tl struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(res.Body, &tl); err != nil {
				t.Fatal(err)
			}
			if tl.Tags == nil || !reflect.DeepEqual(tl.Tags, tc.want) {
				t.Errorf("tags = %#v (body %s), want %v", tl.Tags, res.Body, tc.want)
			}
			if (res.Header.Get("Link") != "") != tc.link {
				t.Errorf("Link = %q, want one: %v", res.Header.Get("Link"), tc.link)
			}
		})
	}

	for _, q := range []string{"?n=-1", "?n=abc", "?n=1.5", "?n=99999999999999999999", "?n=%20"} {
		wantError(t, e.get("/v2/lib/app/tags/list"+q), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
		wantError(t, e.get("/v2/_catalog"+q), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	}

	wantError(t, e.get("/v2/unknown/tags/list"), http.StatusNotFound, "NAME_UNKNOWN")
	wantError(t, e.get("/v2/lib/tags/list"), http.StatusNotFound, "NAME_UNKNOWN")
	wantError(t, e.get("/v2/unknown/tags/list?n=0"), http.StatusNotFound, "NAME_UNKNOWN")

	// A repository with blobs but no tags lists an empty array.
	e.pushBlob("blobs-only", []byte("x"))
	res = e.get("/v2/blobs-only/tags/list")
	wantStatus(t, res, http.StatusOK)
	if want := `{"name":"blobs-only","tags":[]}`; string(res.Body) != want {
		t.Errorf("tags of a repository without tags = %s, want %s", res.Body, want)
	}
}

func catalog(t *testing.T, e *testEnv, query string) ([]string, *response) {
	t.Helper()
	res := e.get("/v2/_catalog" + query)
	wantStatus(t, res, http.StatusOK)
	wantHeader(t, res, "Content-Type", "application/json")
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(res.Body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Repositories == nil {
		t.Fatalf("catalog %s: repositories is not an array: %s", query, res.Body)
	}
	return c.Repositories, res
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	if got, _ := catalog(t, e, ""); len(got) != 0 {
		t.Errorf("empty registry catalog = %v", got)
	}
	repos := []string{"b", "a", "a/b", "a-b", "ab", "a/b/c", "z9", "0"}
	for _, r := range repos {
		e.pushBlob(r, []byte("content of "+r))
	}
	// Byte order: "a" < "a-b" < "a/b" < "ab".
	want := []string{"0", "a", "a-b", "a/b", "a/b/c", "ab", "b", "z9"}
	got, res := catalog(t, e, "")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("catalog = %v, want %v", got, want)
	}
	wantHeader(t, res, "Link", "")

	for n := 1; n <= len(want)+1; n++ {
		var all []string
		p := "?n=" + strconv.Itoa(n)
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatal("pagination does not end")
			}
			page, res := catalog(t, e, p)
			if len(page) > n {
				t.Fatalf("n=%d: page of %d", n, len(page))
			}
			all = append(all, page...)
			next := nextLink(t, res)
			if (next != "") != (len(all) < len(want)) {
				t.Fatalf("n=%d: after %d of %d: Link %q", n, len(all), len(want), next)
			}
			if next == "" {
				break
			}
			wantNext := "/v2/_catalog?" + url.Values{"last": {page[len(page)-1]}, "n": {strconv.Itoa(n)}}.Encode()
			if next != wantNext {
				t.Fatalf("Link target %q, want %q", next, wantNext)
			}
			p = strings.TrimPrefix(next, "/v2/_catalog")
		}
		if !reflect.DeepEqual(all, want) {
			t.Errorf("n=%d: paged catalog = %v, want %v", n, all, want)
		}
	}
	if got, res := catalog(t, e, "?n=0"); len(got) != 0 || res.Header.Get("Link") != "" {
		t.Errorf("n=0: %v, Link %q", got, res.Header.Get("Link"))
	}
	if got, _ := catalog(t, e, "?last=a/b"); !reflect.DeepEqual(got, []string{"a/b/c", "ab", "b", "z9"}) {
		t.Errorf("last=a/b: %v", got)
	}

	// A repository whose last blob is deleted leaves the catalog.
	wantStatus(t, e.do(req{Method: "DELETE", Path: "/v2/z9/blobs/" + e.pushBlob("z9", []byte("content of z9")).String()}), http.StatusAccepted)
	if got, _ := catalog(t, e, "?last=b"); len(got) != 0 {
		t.Errorf("after deleting z9: %v", got)
	}
}

func TestPingV1(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, method := range []string{"GET", "HEAD"} {
		res := e.do(req{Method: method, Path: "/v1/_ping"})
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Type", "application/json")
		if method == "GET" {
			var v map[string]any
			if err := json.Unmarshal(res.Body, &v); err != nil {
				t.Fatalf("/v1/_ping body %q: %v", res.Body, err)
			}
		} else if len(res.Body) != 0 {
			t.Error("HEAD /v1/_ping has a body")
		}
	}
}

func TestSearchV1(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, r := range []string{"library/ubuntu", "library/debian", "team/ubuntu-tools", "other", "x_y", "a"} {
		e.pushBlob(r, []byte(r))
	}
	type result struct {
		Name        *string `json:"name"`
		Description *string `json:"description"`
		StarCount   *int    `json:"star_count"`
		IsOfficial  *bool   `json:"is_official"`
		IsAutomated *bool   `json:"is_automated"`
	}
	search := func(t *testing.T, e *testEnv, query string) (names []string, numResults int, q string) {
		t.Helper()
		res := e.get("/v1/search" + query)
		wantStatus(t, res, http.StatusOK)
		wantHeader(t, res, "Content-Type", "application/json")
		var body struct {
			NumResults *int      `json:"num_results"`
			Query      *string   `json:"query"`
			Results    *[]result `json:"results"`
		}
		if err := json.Unmarshal(res.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.NumResults == nil || body.Query == nil || body.Results == nil {
			t.Fatalf("search body %s lacks num_results, query or results", res.Body)
		}
		names = []string{}
		for _, r := range *body.Results {
			if r.Name == nil || r.Description == nil || r.StarCount == nil || r.IsOfficial == nil || r.IsAutomated == nil {
				t.Fatalf("search result lacks a field: %s", res.Body)
			}
			names = append(names, *r.Name)
		}
		if *body.NumResults != len(names) {
			t.Errorf("num_results %d for %d results", *body.NumResults, len(names))
		}
		return names, *body.NumResults, *body.Query
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?q=ubuntu", []string{"library/ubuntu", "team/ubuntu-tools"}},
		{"?q=UBUNTU", []string{"library/ubuntu", "team/ubuntu-tools"}},
		{"?q=uBuNtU-T", []string{"team/ubuntu-tools"}},
		{"?q=library", []string{"library/debian", "library/ubuntu"}},
		{"?q=ary/deb", []string{"library/debian"}},
		{"?q=nothing", []string{}},
		{"?q=_", []string{"x_y"}},
		{"?q=%25", []string{}},
		{"?q=*", []string{}},
		{"?q=u&n=1", []string{"library/ubuntu"}},
		{"?q=", []string{"a", "library/debian", "library/ubuntu", "other", "team/ubuntu-tools", "x_y"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e := e.with(t)
			names, _, q := search(t, e, tc.query)
			if !reflect.DeepEqual(names, tc.want) {
				t.Errorf("results %v, want %v", names, tc.want)
			}
			v, _ := url.ParseQuery(strings.TrimPrefix(tc.query, "?"))
			if q != v.Get("q") {
				t.Errorf("query = %q, want %q", q, v.Get("q"))
			}
		})
	}
	for _, q := range []string{"?q=a&n=0", "?q=a&n=-1", "?q=a&n=x"} {
		wantError(t, e.get("/v1/search"+q), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	}
}
