package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// WorkAttacks measures memory under two attacks a client can make
// without credentials beyond push: a referrers list far larger than any
// answer should be, and many uploads whose bodies trickle in.
const WorkAttacks = "attacks"

// Sizes of the attacks.
const (
	// referrerPad is the annotation each referrer carries, so the list
	// of all of them is referrers × referrerPad bytes.
	referrerPad = 1 << 20
	// referrerReaders read the list at once, each all of it, page by page.
	referrerReaders = 8
	// slowEvery and slowPiece are how a slow body trickles in.
	slowEvery = 100 * time.Millisecond
	slowPiece = 1024
	// slowDeclared is the Content-Length a slow body announces.
	slowDeclared = 1 << 30
)

// attacksWorkload runs both attacks on a fresh berth and distribution of
// their own and reports the servers' peak RSS during each.
func (r *runner) attacksWorkload(ctx context.Context, rep *Report) error {
	bin, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	r.stopPair()
	b := newConfiguredBerth(bin, filepath.Join(r.dir, "attacks-berth"), "berth", "log:\n  level: warn\n")
	d := newConfiguredDistribution(r.tools.Distribution, filepath.Join(r.dir, "attacks-distribution"), "distribution", "", "")
	servers := []*Server{b, d}
	if err := r.startServers(ctx, servers...); err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			_ = s.Stop()
		}
	}()
	referrers, conns := 50, 256
	if r.cfg.Quick {
		referrers, conns = 10, 32
	}
	sec := Section{
		Name: "Memory under attack",
		About: fmt.Sprintf("Fresh servers of their own. **Referrers**: one image with %d referrers (artifact manifests, each with a %s annotation, so the whole list is %s); %d clients read it at once, every page, following `Link`. "+
			"**Slow bodies**: %d connections each open an upload and send a PATCH announcing %s, then trickle %d bytes every %v for %v; the figure is the server's peak RSS from the start of the attack to its end, against the same server's RSS before it.",
			referrers, sizeName(referrerPad), sizeName(int64(referrers)*referrerPad), referrerReaders, conns, sizeName(slowDeclared), slowPiece, slowEvery, r.sz.WrkDuration),
	}

	// Referrers: berth serves the list in pages; distribution has no
	// referrers API, so the row compares berth with itself at rest.
	c := NewClient(b.URL(), referrerReaders)
	defer c.Close()
	rest, peak, pages, err := r.referrersAttack(ctx, b, c, referrers)
	if err != nil {
		return fmt.Errorf("referrers attack on berth: %w", err)
	}
	r.logf("attacks: referrers: berth RSS %.0f MiB at rest, peak %.0f MiB reading %d pages", rest, peak, pages)
	sec.Rows = append(sec.Rows, Row{
		Metric: fmt.Sprintf("peak RSS, %d clients reading %s of referrers", referrerReaders, sizeName(int64(referrers)*referrerPad)),
		Unit:   "MiB", Berth: peak, Dist: rest, Peer: "berth before the attack", LowerIsBetter: true,
		Target: &Target{Text: "the referrers attack grows berth's RSS by at most 64 MiB", Met: peak-rest <= 64},
	})

	// Slow bodies, on both servers.
	var rss [2]float64
	var restS [2]float64
	for i, s := range servers {
		rest, peak, err := r.slowBodies(ctx, s, conns)
		if err != nil {
			return fmt.Errorf("slow bodies on %s: %w", s.Name, err)
		}
		r.logf("attacks: %d slow bodies: %s RSS %.0f MiB before, peak %.0f MiB", conns, s.Name, rest, peak)
		rss[i], restS[i] = peak, rest
	}
	sec.Rows = append(sec.Rows,
		Row{Metric: fmt.Sprintf("peak RSS, %d slow upload bodies", conns), Unit: "MiB", Berth: rss[0], Dist: rss[1], LowerIsBetter: true,
			Target: &Target{Text: fmt.Sprintf("peak RSS under %d slow upload bodies ≤ distribution's", conns), Met: rss[0] <= rss[1]}},
		Row{Metric: fmt.Sprintf("RSS growth, %d slow upload bodies", conns), Unit: "MiB", Berth: rss[0] - restS[0], Dist: rss[1] - restS[1], LowerIsBetter: true},
	)
	rep.Sections = append(rep.Sections, sec)
	return nil
}

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// referrersAttack pushes an image with n padded referrers to s and has
// referrerReaders clients read the whole list at once. It returns s's
// RSS before (MiB), its peak during the reads, and the pages each read.
func (r *runner) referrersAttack(ctx context.Context, s *Server, c *Client, n int) (rest, peak float64, pages int, err error) {
	const repo = "attack/referrers"
	subject := newImage(r.salt+31, true)
	if err := subject.pushBlobs(ctx, c, repo); err != nil {
		return 0, 0, 0, err
	}
	if err := c.PutManifest(ctx, repo, "v1", mediaTypeManifest, subject.manifest); err != nil {
		return 0, 0, 0, err
	}
	if _, err := c.PushSmall(ctx, repo, emptyJSON); err != nil {
		return 0, 0, 0, err
	}
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	empty := desc{"application/vnd.oci.empty.v1+json", digest.FromBytes(emptyJSON), len(emptyJSON)}
	pad := strings.Repeat("p", referrerPad)
	for i := range n {
		m, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mediaTypeManifest,
			"artifactType":  "application/vnd.example.signature",
			"config":        empty,
			"layers":        []desc{empty},
			"subject":       desc{mediaTypeManifest, subject.digest, len(subject.manifest)},
			"annotations":   map[string]string{"n": fmt.Sprint(i), "pad": pad},
		})
		if err != nil {
			return 0, 0, 0, err
		}
		if err := c.PutManifest(ctx, repo, digest.FromBytes(m).String(), mediaTypeManifest, m); err != nil {
			return 0, 0, 0, err
		}
	}
	if rest, err = rssMiB(s); err != nil {
		return 0, 0, 0, err
	}
	if err := s.ResetPeakRSS(); err != nil {
		return 0, 0, 0, err
	}
	errs := make([]error, referrerReaders)
	counts, pageCounts := make([]int, referrerReaders), make([]int, referrerReaders)
	var wg sync.WaitGroup
	for k := range referrerReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[k], pageCounts[k], errs[k] = c.readReferrers(ctx, repo, subject.digest)
		}()
	}
	wg.Wait()
	pages = pageCounts[0]
	if err := errors.Join(errs...); err != nil {
		return 0, 0, 0, err
	}
	for _, got := range counts {
		if got != n {
			return 0, 0, 0, fmt.Errorf("a reader saw %d referrers, want %d", got, n)
		}
	}
	p, err := s.PeakRSS()
	return rest, float64(p) / MiB, pages, err
}

// readReferrers reads every page of the referrers of d and returns how
// many descriptors and pages there were.
func (c *Client) readReferrers(ctx context.Context, repo string, d digest.Digest) (n, pages int, err error) {
	next := c.base + "/v2/" + repo + "/referrers/" + d.String()
	for next != "" && pages < 10000 {
		resp, err := c.do(ctx, http.MethodGet, next, nil, 0, nil, http.StatusOK)
		if err != nil {
			return 0, 0, err
		}
		var idx struct {
			Manifests []json.RawMessage `json:"manifests"`
		}
		err = json.NewDecoder(resp.Body).Decode(&idx)
		drain(resp)
		if err != nil {
			return 0, 0, err
		}
		n += len(idx.Manifests)
		pages++
		next = ""
		if l := resp.Header.Get("Link"); l != "" {
			target, _, _ := strings.Cut(l, ";")
			target = strings.Trim(strings.TrimSpace(target), "<>")
			u, err := resp.Request.URL.Parse(target)
			if err != nil {
				return 0, 0, err
			}
			next = u.String()
		}
	}
	return n, pages, nil
}

// slowBodies opens conns uploads on s and trickles a body into each for
// the workload duration. It returns s's RSS before (MiB) and its peak
// during the attack.
func (r *runner) slowBodies(ctx context.Context, s *Server, conns int) (rest, peak float64, err error) {
	c := NewClient(s.URL(), 16)
	defer c.Close()
	urls := make([]string, conns)
	for i := range urls {
		u, err := c.StartUpload(ctx, fmt.Sprintf("attack/slow-%03d", i))
		if err != nil {
			return 0, 0, err
		}
		urls[i] = u.RequestURI()
	}
	if rest, err = rssMiB(s); err != nil {
		return 0, 0, err
	}
	if err := s.ResetPeakRSS(); err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(r.sz.WrkDuration)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = trickle(ctx, s.Addr, u, deadline)
		}()
	}
	wg.Wait()
	p, perr := s.PeakRSS()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	return rest, float64(p) / MiB, perr
}

// trickle sends a PATCH announcing slowDeclared bytes to path on addr and
// sends slowPiece bytes every slowEvery until deadline, then hangs up.
func trickle(ctx context.Context, addr, path string, deadline time.Time) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	head := fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, addr, slowDeclared)
	if _, err := io.WriteString(conn, head); err != nil {
		return err
	}
	piece := bytes.Repeat([]byte{'s'}, slowPiece)
	t := time.NewTicker(slowEvery)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(piece); err != nil {
			// The server may end a body it judges too slow: that is a
			// defence, not a failure of the run.
			return nil
		}
	}
	return nil
}

// rssMiB returns s's resident set size now, in MiB.
func rssMiB(s *Server) (float64, error) {
	if err := s.ResetPeakRSS(); err != nil {
		return 0, err
	}
	p, err := s.PeakRSS()
	return float64(p) / MiB, err
}
