package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"
)

// chromium returns Debian's Chromium (scripts/test.sh installs it).
func chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return lookPath(t, "chromium")
}

// newBrowser starts headless Chromium with a new, empty profile, for as long as the test runs.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		missing(t, "headless chromium does not start: %v", err)
	}
	return ctx
}

// screenshots saves full-page PNGs of the browser's page in a test directory and, when
// UI_SCREENSHOTS names one, there too.
type screenshots struct {
	t    testing.TB
	dirs []string
}

func newScreenshots(t testing.TB) *screenshots {
	s := &screenshots{t: t, dirs: []string{t.TempDir()}}
	if d := os.Getenv("UI_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		s.dirs = append(s.dirs, d)
	}
	return s
}

func (s *screenshots) take(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		var none chromedp.Void
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return none, fmt.Errorf("screenshot %s: %w", name, err)
		}
		if len(png) < 8 || string(png[1:4]) != "PNG" {
			return none, fmt.Errorf("screenshot %s is no PNG", name)
		}
		for _, d := range s.dirs {
			if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
				return none, err
			}
		}
		return none, nil
	}
}

// visit navigates and returns the HTTP status of the page.
func visit(ctx context.Context, url string) (int, error) {
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(url))
	if err != nil {
		return 0, err
	}
	if resp == nil {
		return 0, fmt.Errorf("no response for %s", url)
	}
	return int(resp.Status), nil
}

// TestWebUI drives the web UI of the real binary in Chromium: an anonymous visitor is refused
// a repository the rules keep from anonymous, a person signs in, searches a name that only an
// upstream (another berth, through a cache) has, opens it and sees its platforms and layers,
// sees an `oras attach`ed signature in the referrers tree of a hosted image, and deletes a tag.
func TestWebUI(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	oras := newTool(t, peer(t, "oras"), clientEnv(t))
	shots := newScreenshots(t)

	// The upstream: a plain berth with a catalog, holding a two-platform image.
	up := startBerth(t)
	upstreamIndex := newIndex(t, "linux/amd64", "linux/arm64")
	newClient(t, up).pushIndex("tools/upstream-only", "v1", upstreamIndex)

	dir := t.TempDir()
	var users strings.Builder
	for _, u := range []string{"admin", "reader"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "%s:%s\n", u, h)
	}
	writeFile(t, dir, "htpasswd", []byte(users.String()))
	cfg := writeFile(t, dir, "berth.yaml", []byte(fmt.Sprintf(`auth:
  mode: basic
  htpasswd: htpasswd
  rules:
    - repositories: ["**"]
      users: [admin]
      actions: ["*"]
      catalog: true
    - repositories: ["**"]
      users: [reader]
      actions: [pull]
      catalog: true
    - repositories: ["public/**"]
      users: [anonymous]
      actions: [pull]
      catalog: true
registries:
  - name: upstream
    type: cache
    prefix: hub/
    upstream:
      url: http://%s
`, up.Addr)))
	b := startAuthBerth(t, cfg, nil)
	base := b.URL()
	admin := authClient(t, base, "admin", "admin-pw")
	app := newImage(t, "linux", "amd64", 2)
	admin.pushImage("team/app", "v1", app)
	admin.pushImage("team/app", "v2", newImage(t, "linux", "arm64", 1))
	admin.pushImage("public/web", "latest", newImage(t, "linux", "amd64", 1))

	// A signature attached with oras, as a client signs an image.
	writeFile(t, oras.dir, "sig.json", []byte(`{"signature":"`+sha256Digest(randomBytes(t, 8))+`"}`))
	const sigType = "application/vnd.cncf.notary.signature"
	oras.run("attach", "--plain-http", "-u", "admin", "-p", "admin-pw", "--distribution-spec", "v1.1-referrers-api",
		"--artifact-type", sigType, b.Addr+"/team/app:v1", "sig.json:application/json")

	// Anonymous: refused where the rules say so, shown what anonymous may read.
	status, err := visit(ctx, base+"/ui/r/team/app")
	if err != nil {
		t.Fatal(err)
	}
	var text string
	if err := chromedp.Do(ctx, readText(&text, "main")); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized || !strings.Contains(text, "Not allowed") || strings.Contains(text, "v1") {
		t.Errorf("anonymous on team/app: %d %q; want 401 and Not allowed", status, text)
	}
	if err := chromedp.Do(ctx, shots.take("refused")); err != nil {
		t.Fatal(err)
	}
	if _, err := visit(ctx, base+"/ui/"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, readText(&text, "#results")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "public/web") || strings.Contains(text, "team/app") {
		t.Errorf("anonymous listing: %q; want public/web and not team/app", text)
	}

	// Sign in.
	if _, err := visit(ctx, base+"/ui/login?next=/ui/"); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), "admin-pw"),
		chromedp.Click(chromedp.CSS("form.login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".who strong")),
		readText(&text, ".who"),
	)
	if err != nil || !strings.Contains(text, "admin") {
		t.Fatalf("sign-in: %v %q", err, text)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies.Cookies {
		if c.Name == "berth_ui" && (!c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict) {
			t.Errorf("session cookie: HttpOnly %v, SameSite %v", c.HTTPOnly, c.SameSite)
		}
	}

	// Search as you type for a name only the upstream has.
	const upstreamName = "hub/tools/upstream-only"
	link := `#results a[href="/ui/r/` + upstreamName + `"]`
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#q"), "upstream-on"),
		// The results change in place, without a page load.
		chromedp.WaitNotPresent(chromedp.CSS(`#results a[href="/ui/r/team/app"]`)),
		chromedp.WaitVisible(chromedp.CSS(link)),
		readText(&text, "#results"),
	)
	if err != nil {
		t.Fatalf("search as you type: %v", err)
	}
	if !strings.Contains(text, "upstream only") || !strings.Contains(text, "cache") || strings.Contains(text, "team/app") {
		t.Errorf("search results %q: want %s marked cache and upstream only, and nothing else", text, upstreamName)
	}
	var loc string
	if err := chromedp.Do(ctx, readLocation(&loc), shots.take("search")); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/ui/?q=upstream-on") {
		t.Errorf("the address after searching is %s, want the search in it", loc)
	}

	// Open it: its tag comes from the upstream; the image index, through the cache.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/m/`)+upstreamName+`@v1"]`),
		chromedp.Click(chromedp.CSS(`table.tags a[href="/ui/m/`)+upstreamName+`@v1"]`),
		chromedp.WaitVisible(chromedp.CSS("#plat-h")),
		readText(&text, "main"),
	)
	if err != nil {
		t.Fatalf("open the upstream image: %v", err)
	}
	for _, want := range []string{"linux/amd64", "linux/arm64", upstreamIndex.Manifest.Digest()} {
		if !strings.Contains(text, want) {
			t.Errorf("the index page lacks %s", want)
		}
	}
	if err := chromedp.Do(ctx, shots.take("index")); err != nil {
		t.Fatal(err)
	}
	amd := upstreamIndex.Images[0]
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/ui/m/`+upstreamName+`@`+amd.Manifest.Digest()+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#layers-h")),
		readText(&text, "main"),
	)
	if err != nil {
		t.Fatalf("open a platform: %v", err)
	}
	for _, l := range amd.Layers {
		if !strings.Contains(text, strings.TrimPrefix(l.Digest(), "sha256:")[:12]) {
			t.Errorf("the image page lacks layer %s", l.Digest())
		}
	}
	if !strings.Contains(text, "application/vnd.oci.image.layer.v1.tar+gzip") || !strings.Contains(text, "E2E_NONCE=") {
		t.Errorf("the image page lacks the layers' media type or the config's environment:\n%s", text)
	}

	// The hosted image and its signature in the referrers tree.
	if _, err := visit(ctx, base+"/ui/m/team/app@v1"); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(".tree .refs a")),
		readText(&text, ".tree"),
		shots.take("manifest"),
	)
	if err != nil {
		t.Fatalf("referrers: %v", err)
	}
	if !strings.Contains(text, "signature") || !strings.Contains(text, sigType) {
		t.Errorf("referrers tree %q: want the signature (%s)", text, sigType)
	}
	// Into the signature.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(".tree .refs a")),
		chromedp.WaitVisible(chromedp.CSS("#layers-h")),
		readText(&text, "main"),
	)
	if err != nil || !strings.Contains(text, "Refers to") || !strings.Contains(text, app.Manifest.Digest()) {
		t.Errorf("the signature's page: %v; want it to name its subject %s", err, app.Manifest.Digest())
	}

	// Delete a tag, with the confirmation step.
	if _, err := visit(ctx, base+"/ui/r/team/app"); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("table.tags")),
		shots.take("repository"),
		chromedp.Click(chromedp.CSS(`table.tags a.danger[href*="ref=v2"]`)),
		chromedp.WaitVisible(chromedp.CSS("form.confirm button")),
		chromedp.Click(chromedp.CSS("form.confirm button")),
		chromedp.WaitVisible(chromedp.CSS("p.ok")),
		readText(&text, "p.ok"),
	)
	if err != nil || !strings.Contains(text, "Deleted v2") {
		t.Fatalf("delete v2: %v %q", err, text)
	}
	if st := admin.manifestStatus("team/app", "v2"); st != http.StatusNotFound {
		t.Errorf("team/app:v2 after the delete: %d, want 404", st)
	}
	if st := admin.manifestStatus("team/app", "v1"); st != http.StatusOK {
		t.Errorf("team/app:v1 after deleting v2: %d, want 200", st)
	}

	// The registries and operations pages.
	for _, p := range []struct{ path, ready, name string }{
		{"/ui/registries", ".cards", "registries"},
		{"/ui/ops", "#usage", "operations"},
	} {
		status, err := visit(ctx, base+p.path)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: %d %v", p.path, status, err)
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(p.ready)), readText(&text, "main"), shots.take(p.name)); err != nil {
			t.Fatal(err)
		}
		if p.name == "registries" && (!strings.Contains(text, "http://"+up.Addr) || !strings.Contains(text, "up")) {
			t.Errorf("registries page %q lacks the upstream and its state", text)
		}
		if p.name == "operations" && !strings.Contains(text, "team/app") {
			t.Errorf("operations page lacks team/app's storage")
		}
	}

	// A phone's width: the repository page still reads.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/ui/m/team/app@v1"),
		chromedp.WaitVisible(chromedp.CSS("#ref-h")), shots.take("phone")); err != nil {
		t.Fatal(err)
	}
}

// readText stores the text of the first element sel matches.
func readText(dst *string, sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		v, err := chromedp.Text(chromedp.CSS(sel))(ctx, tg)
		*dst = v
		return chromedp.Void{}, err
	}
}

// readLocation stores the page's address.
func readLocation(dst *string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		v, err := chromedp.Location()(ctx, tg)
		*dst = v
		return chromedp.Void{}, err
	}
}

// TestWebUIDisabled: with ui.enabled false, /ui/ and / are the registry's, as without a UI.
func TestWebUIDisabled(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, t.TempDir(), "berth.yaml", []byte("ui:\n  enabled: false\n"))
	b := startBerth(t, "--config", cfg)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/ui/", "/"} {
		resp, err := hc.Get(b.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Security-Policy") != "" {
			t.Errorf("GET %s with the UI off: %d %v, want the registry's 404", p, resp.StatusCode, resp.Header)
		}
	}
}
