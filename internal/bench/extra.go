package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Workload names of the comparisons with other tools and connectors.
const (
	WorkCopy      = "copy"
	WorkS3        = "s3"
	WorkPGCatalog = "pgcatalog"
)

// startLoneBerth stops the pair and starts berth alone with config, on a
// fresh directory r.dir/label-berth, for a workload that measures berth
// against itself. stop stops it and removes the directory (unless -keep).
func (r *runner) startLoneBerth(ctx context.Context, label, config string) (b *Server, stop func(), err error) {
	bin, err := r.berthBinary(ctx)
	if err != nil {
		return nil, nil, err
	}
	r.stopPair()
	dir := filepath.Join(r.dir, label+"-berth")
	b = newConfiguredBerth(bin, dir, "berth", config)
	b.label = label
	if err := r.startServers(ctx, b); err != nil {
		return nil, nil, err
	}
	return b, func() {
		_ = b.Stop()
		if !r.cfg.Keep {
			_ = removeAll(dir, 4)
		}
	}, nil
}

// newConfiguredBerth returns a berth server started with --config holding
// config (YAML), serving dir, named name.
func newConfiguredBerth(bin, dir, name, config string, extraEnv ...string) *Server {
	s := NewBerth(bin, dir, extraEnv...)
	s.Name = name
	s.command = func(addr string) *exec.Cmd {
		cfg := filepath.Join(dir, "berth.yaml")
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(cfg, []byte(config), 0o644)
		cmd := exec.Command(bin, "serve", "--config", cfg, "--addr", addr, "--data", dir)
		cmd.Env = append(cleanEnv("BERTH_"), "BERTH_LOG_LEVEL=warn")
		cmd.Env = append(cmd.Env, extraEnv...)
		return cmd
	}
	return s
}

// newConfiguredDistribution returns a CNCF registry named name, storing
// in dir/storage, configured by DistributionConfig plus extra (YAML of
// top-level keys, appended) and with its storage section replaced by
// storage when that is not empty.
func newConfiguredDistribution(bin, dir, name, storage, extra string) *Server {
	s := NewDistribution(bin, dir)
	s.Name = name
	root := s.StorageRoot
	s.command = func(addr string) *exec.Cmd {
		cfg := filepath.Join(dir, "config.yml")
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(cfg, []byte(distributionConfigWith(root, addr, storage, extra)), 0o644)
		cmd := exec.Command(bin, "serve", cfg)
		cmd.Env = cleanEnv("REGISTRY_")
		return cmd
	}
	return s
}

// distributionConfigWith is DistributionConfig with the filesystem
// section replaced by storage (lines indented under storage:, when not
// empty) and extra appended.
func distributionConfigWith(root, addr, storage, extra string) string {
	cfg := DistributionConfig(root, addr)
	if storage != "" {
		fs := "  filesystem:\n    rootdirectory: " + strconv.Quote(root) + "\n"
		cfg = strings.Replace(cfg, fs, storage, 1)
	}
	return cfg + extra
}

// startServers starts each server and records it for stopAll.
func (r *runner) startServers(ctx context.Context, ss ...*Server) error {
	for _, s := range ss {
		if err := s.Start(ctx); err != nil {
			return err
		}
		r.started = append(r.started, s)
	}
	return nil
}

// berthBinary returns the berth binary, building it when the run serves
// berth otherwise (-profile).
func (r *runner) berthBinary(ctx context.Context) (string, error) {
	if r.tools.Berth != "" {
		return r.tools.Berth, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	b, err := BuildBerth(ctx, root, filepath.Join(r.dir, "bin"), r.log)
	if err != nil {
		return "", err
	}
	r.tools.Berth = b
	return b, nil
}

// sharedTool installs name with ../shared/tools/SCRIPT and returns its path:
// script is install-peers.sh (the binary is in the printed directory) or
// install-debs.sh (the binary is on PATH, or at debPath).
func sharedTool(ctx context.Context, log io.Writer, script, pkg, name, debPath string) (string, error) {
	if script == "install-debs.sh" {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if debPath != "" && executableFile(debPath) {
			return debPath, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "installing %s (%s %s)\n", name, script, pkg)
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(filepath.Dir(root), "shared", "tools", script), pkg)
	cmd.Dir = root
	cmd.Stderr = log
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", script, pkg, err)
	}
	if script == "install-peers.sh" {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		p := filepath.Join(strings.TrimSpace(lines[len(lines)-1]), name)
		if !executableFile(p) {
			return "", fmt.Errorf("%s did not install %s", script, name)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if debPath != "" && executableFile(debPath) {
		return debPath, nil
	}
	return "", fmt.Errorf("%s not found after %s %s", name, script, pkg)
}

func executableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// copyWorkload times berth copy, crane copy and skopeo copy of one image
// between two berth instances (CopyWorkload).
func (r *runner) copyWorkload(ctx context.Context, rep *Report) error {
	berth, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	crane, err := sharedTool(ctx, r.log, "install-peers.sh", "crane", "crane", "")
	if err != nil {
		return err
	}
	skopeo, err := sharedTool(ctx, r.log, "install-debs.sh", "skopeo", "skopeo", "")
	if err != nil {
		return err
	}
	src := NewBerth(berth, filepath.Join(r.dir, "copy-source"))
	dst := NewBerth(berth, filepath.Join(r.dir, "copy-dest"))
	src.Name, dst.Name = "berth-source", "berth-dest"
	if err := r.startServers(ctx, src, dst); err != nil {
		return err
	}
	defer func() {
		_ = src.Stop()
		_ = dst.Stop()
		if !r.cfg.Keep {
			for _, p := range []string{"copy-source", "copy-dest", "copy-work"} {
				_ = removeAll(filepath.Join(r.dir, p), 4)
			}
		}
	}()
	size := r.sz.CopyImage
	res, err := CopyWorkload(ctx, CopyEnv{
		Berth: berth, Crane: crane, Skopeo: skopeo,
		Source: src.Addr, Dest: dst.Addr,
		WorkDir: filepath.Join(r.dir, "copy-work"),
		Size:    size, Layers: 4, Reps: r.cfg.Reps, Log: r.log,
	})
	if err != nil {
		return err
	}
	r.logf("%s", res.String())
	rep.Sections = append(rep.Sections, copySection(res, size))
	return nil
}

// copySection is the report of CopyWorkload: berth's median against each
// other tool's.
func copySection(res CopyResult, size int64) Section {
	b, _ := res.Tool("berth")
	var rows []Row
	for _, peer := range []string{"crane", "skopeo"} {
		t, ok := res.Tool(peer)
		if !ok {
			continue
		}
		row := Row{Metric: "copy time, berth copy vs " + peer + " copy", Unit: "s", Peer: peer,
			Berth: b.Median.Seconds(), Dist: t.Median.Seconds(), LowerIsBetter: true}
		row.Target = &Target{Text: "berth copy at least as fast as " + peer + " copy (time ratio ≤ 1)", Met: row.Ratio() <= 1}
		rows = append(rows, row,
			Row{Metric: "copy tool CPU, berth vs " + peer, Unit: "s", Peer: peer, Berth: b.CPU.Seconds(), Dist: t.CPU.Seconds(), LowerIsBetter: true})
	}
	return Section{
		Name: fmt.Sprintf("Copy of a %s image between two registries", sizeName(size)),
		About: fmt.Sprintf("`berth copy`, `crane copy` (from install-peers.sh) and `skopeo copy` (Debian's) copy one image of %s of incompressible data in 4 gzip layers from one berth to another (both on loopback, fresh data directories), each into a fresh repository, taking turns; the copied blobs are deleted after each run. The peer column is the tool named in the metric; tool CPU is the user+system time of the copying process.",
			sizeName(size)),
		Rows: rows,
	}
}

// getBlobTTFB GETs blob d of repo and returns the time to the first byte
// of the body and to the last; the content is checked against d and size.
func getBlobTTFB(ctx context.Context, c *Client, repo string, d digest.Digest, size int64) (ttfb, total time.Duration, err error) {
	start := time.Now()
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/blobs/"+d.String(), nil, 0, nil, http.StatusOK)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	n, err := io.ReadAtLeast(resp.Body, buf, 1)
	ttfb = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	h.Write(buf[:n])
	m, err := io.CopyBuffer(h, resp.Body, buf)
	total = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if int64(n)+m != size {
		return 0, 0, fmt.Errorf("GET blob %s: %d bytes, want %d", d, int64(n)+m, size)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return 0, 0, fmt.Errorf("GET blob %s: content has digest %s", d, got)
	}
	return ttfb, total, nil
}
