package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// WorkUI is the web UI's repositories page and search at scale.
const WorkUI = "ui"

// uiRequests is how many timed requests each UI and API request gets.
const uiRequests = 200

// uiWorkload fills one berth with r.sz.UIRepos repositories and times,
// one request at a time on one keep-alive connection, the web UI's
// repositories page (first and a middle page), its search, and beside
// each the registry API's request that answers the same question: the
// catalog page and Docker's search.
func (r *runner) uiWorkload(ctx context.Context, rep *Report) error {
	b, stop, err := r.startLoneBerth(ctx, "ui", "log:\n  level: warn\n")
	if err != nil {
		return err
	}
	defer stop()
	c := NewClient(b.URL(), 16)
	defer c.Close()

	n := r.sz.UIRepos
	r.logf("ui: creating %d repositories", n)
	first := repoName(0)
	cfg, err := c.PushSmall(ctx, first, newImage(r.salt+7, false).config)
	if err != nil {
		return err
	}
	names := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		names = append(names, repoName(i))
	}
	if err := mountAll(ctx, c, first, cfg, names); err != nil {
		return fmt.Errorf("ui repository fixture: %w", err)
	}
	if got, _, err := c.PageCatalog(ctx, 1000); err != nil || got != n {
		return fmt.Errorf("the catalog lists %d repositories (%v), want %d", got, err, n)
	}
	middle := repoName(n / 2)
	// repo-0999 names 100 repositories at 100,000 (repo-099900…repo-099999),
	// and at smaller sizes whatever ends in it.
	term := strings.TrimSuffix(repoName(n-1), "99")
	cases := []struct {
		metric   string
		ui, api  string
		peer     string
		contains string
	}{
		{"repositories page, first 50", "/ui/?n=50", "/v2/_catalog?n=50", "catalog API, n=50", first},
		{"repositories page, 50 from the middle", "/ui/?n=50&last=" + middle, "/v2/_catalog?n=50&last=" + middle, "catalog API, n=50", repoName(n/2 + 1)},
		{"search, up to 100 matches", "/ui/?q=" + term, "/v1/search?n=100&q=" + term, "Docker search API, n=100", repoName(n - 1)},
	}
	var rows []Row
	for _, tc := range cases {
		uiMs, err := timeRequests(ctx, c, b.URL()+tc.ui, tc.contains)
		if err != nil {
			return err
		}
		apiMs, err := timeRequests(ctx, c, b.URL()+tc.api, tc.contains)
		if err != nil {
			return err
		}
		r.logf("  %s: UI %.2f ms, API %.2f ms", tc.metric, uiMs, apiMs)
		rows = append(rows, Row{Metric: fmt.Sprintf("%s at %s repositories (median)", tc.metric, withThousands(n)), Unit: "ms",
			Berth: uiMs, Dist: apiMs, Peer: tc.peer, LowerIsBetter: true})
	}
	rep.Sections = append(rep.Sections, Section{
		Name: fmt.Sprintf("Web UI at %s repositories", withThousands(n)),
		About: fmt.Sprintf("berth alone, with %s repositories (one cross-repository mount each, through the API) and no authentication. "+
			"One client sends %d requests of each kind, one at a time on one keep-alive connection over loopback, after 20 unmeasured ones; "+
			"the table shows the median time from sending a request to reading the whole answer (the server's time, plus a loopback round trip). "+
			"The berth column is the web UI's HTML page, the other the registry API's answer to the same question.", withThousands(n), uiRequests),
		Rows: rows,
	})
	return nil
}

// timeRequests sends GETs of u one at a time and returns the median time
// per request in milliseconds; each answer must be 200 and hold contains.
func timeRequests(ctx context.Context, c *Client, u, contains string) (float64, error) {
	var ms []float64
	for i := range 20 + uiRequests {
		start := time.Now()
		resp, err := c.do(ctx, http.MethodGet, u, nil, 0, nil, http.StatusOK)
		if err != nil {
			return 0, err
		}
		var body strings.Builder
		_, err = readAllInto(&body, resp)
		el := time.Since(start)
		if err != nil {
			return 0, err
		}
		if !strings.Contains(body.String(), contains) {
			return 0, fmt.Errorf("GET %s: the answer does not hold %s", u, contains)
		}
		if i >= 20 {
			ms = append(ms, float64(el.Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	return Median(ms), nil
}

// withThousands writes n with thousands separators.
func withThousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// readAllInto reads and closes a response body into b.
func readAllInto(b *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(b, resp.Body)
}
