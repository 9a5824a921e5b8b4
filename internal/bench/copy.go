package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CopyEnv is what CopyWorkload needs: the programs compared and two running registries.
type CopyEnv struct {
	// Berth, Crane and Skopeo are the binaries compared (berth copy, crane copy, skopeo
	// copy). Berth also pushes the image to Source.
	Berth, Crane, Skopeo string
	// BerthArgs are extra flags of berth copy.
	BerthArgs []string
	// Source and Dest are the registries, "host:port" on loopback, reached over plain HTTP.
	Source, Dest string
	// WorkDir holds the generated image and the tools' home directories.
	WorkDir string
	// Size is the image's total layer size (default 1 GiB), in Layers layers (default 4).
	Size   int64
	Layers int
	// Reps is how many times each tool copies (default 3); the tools take turns, each
	// round in another order.
	Reps int
	// Timeout bounds one copy (default 10 minutes).
	Timeout time.Duration
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

// CopyToolResult is one tool's timings.
type CopyToolResult struct {
	Tool   string
	Runs   []time.Duration
	Median time.Duration
	// CPU is the median CPU time (user and system) of the tool's process: less noisy than
	// wall time on a shared machine, and blind to the registries' work.
	CPU time.Duration
	// MiBps is the image size over the median time.
	MiBps float64
}

// CopyResult is the outcome of CopyWorkload.
type CopyResult struct {
	// ImageBytes is the size of the image's layers and config.
	ImageBytes int64
	Tools      []CopyToolResult
}

// Tool returns the result of one tool, by name ("berth", "crane", "skopeo").
func (r CopyResult) Tool(name string) (CopyToolResult, bool) {
	for _, t := range r.Tools {
		if t.Tool == name {
			return t, true
		}
	}
	return CopyToolResult{}, false
}

// String renders the result as a small table.
func (r CopyResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "copy of a %.0f MiB image between two registries (median of %d)\n", float64(r.ImageBytes)/MiB, len(r.first().Runs))
	fmt.Fprintf(&b, "%-8s %10s %10s %10s  %s\n", "tool", "median", "MiB/s", "tool CPU", "runs")
	for _, t := range r.Tools {
		runs := make([]string, len(t.Runs))
		for i, d := range t.Runs {
			runs[i] = fmt.Sprintf("%.2fs", d.Seconds())
		}
		fmt.Fprintf(&b, "%-8s %9.2fs %10.0f %9.2fs  %s\n", t.Tool, t.Median.Seconds(), t.MiBps, t.CPU.Seconds(), strings.Join(runs, " "))
	}
	return b.String()
}

func (r CopyResult) first() CopyToolResult {
	if len(r.Tools) == 0 {
		return CopyToolResult{}
	}
	return r.Tools[0]
}

// CopyWorkload pushes a generated image (env.Size bytes of incompressible data in
// env.Layers gzip layers) to env.Source once, then times `berth copy`, `crane copy` and
// `skopeo copy` of it into fresh repositories of env.Dest, taking turns, env.Reps times
// each, and returns every run and each tool's median. Every copy is checked: the
// destination must serve the source's manifest digest.
func CopyWorkload(ctx context.Context, env CopyEnv) (CopyResult, error) {
	if env.Size <= 0 {
		env.Size = 1 << 30
	}
	if env.Layers <= 0 {
		env.Layers = 4
	}
	if env.Reps <= 0 {
		env.Reps = 3
	}
	if env.Timeout <= 0 {
		env.Timeout = 10 * time.Minute
	}
	if env.Log == nil {
		env.Log = io.Discard
	}
	for name, p := range map[string]string{"berth": env.Berth, "crane": env.Crane, "skopeo": env.Skopeo} {
		if p == "" {
			return CopyResult{}, fmt.Errorf("copy workload: no %s binary", name)
		}
	}
	home := filepath.Join(env.WorkDir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return CopyResult{}, err
	}
	policy := filepath.Join(env.WorkDir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return CopyResult{}, err
	}
	toolEnv := copyToolEnv(home)

	layout := filepath.Join(env.WorkDir, "image")
	fmt.Fprintf(env.Log, "copy: generating a %.0f MiB image in %d layers\n", float64(env.Size)/MiB, env.Layers)
	img, err := writeCopyImage(layout, env.Size, env.Layers)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy workload: generating the image: %w", err)
	}
	src := env.Source + "/bench/copy:v1"
	fmt.Fprintf(env.Log, "copy: pushing it to %s\n", src)
	if _, err := runCopyTool(ctx, env.Timeout, toolEnv, env.Berth, "push", "-q", layout, src); err != nil {
		return CopyResult{}, fmt.Errorf("copy workload: pushing the image: %w", err)
	}

	tools := []struct {
		name string
		args func(dst string) (string, []string)
	}{
		{"berth", func(dst string) (string, []string) {
			return env.Berth, append([]string{"copy", "-q", src, dst}, env.BerthArgs...)
		}},
		{"crane", func(dst string) (string, []string) { return env.Crane, []string{"copy", "--insecure", src, dst} }},
		{"skopeo", func(dst string) (string, []string) {
			return env.Skopeo, []string{"--policy", policy, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + src, "docker://" + dst}
		}},
	}
	res := CopyResult{ImageBytes: img.bytes, Tools: make([]CopyToolResult, len(tools))}
	cpu := make([][]float64, len(tools))
	for i, t := range tools {
		res.Tools[i].Tool = t.name
	}
	for rep := range env.Reps {
		for k := range tools {
			i := (rep + k) % len(tools)
			t := tools[i]
			dst := fmt.Sprintf("%s/bench/copy-%s-%d:v1", env.Dest, t.name, rep)
			bin, args := t.args(dst)
			start := time.Now()
			used, err := runCopyTool(ctx, env.Timeout, toolEnv, bin, args...)
			if err != nil {
				return res, fmt.Errorf("copy workload: %s: %w", t.name, err)
			}
			d := time.Since(start)
			cpu[i] = append(cpu[i], float64(used))
			if err := checkCopied(ctx, env, toolEnv, dst, img.manifest); err != nil {
				return res, fmt.Errorf("copy workload: %s: %w", t.name, err)
			}
			// The next copy must move the bytes again: skopeo remembers where blobs are
			// and would mount them from this repository instead.
			if err := deleteCopied(ctx, env.Dest, fmt.Sprintf("bench/copy-%s-%d", t.name, rep), img); err != nil {
				return res, fmt.Errorf("copy workload: cleaning up after %s: %w", t.name, err)
			}
			fmt.Fprintf(env.Log, "copy: round %d: %-6s %.2fs\n", rep+1, t.name, d.Seconds())
			res.Tools[i].Runs = append(res.Tools[i].Runs, d)
		}
	}
	for i := range res.Tools {
		t := &res.Tools[i]
		ms := make([]float64, len(t.Runs))
		for j, d := range t.Runs {
			ms[j] = float64(d)
		}
		t.Median = time.Duration(Median(ms))
		t.CPU = time.Duration(Median(cpu[i]))
		t.MiBps = float64(img.bytes) / MiB / t.Median.Seconds()
	}
	return res, nil
}

// copyToolEnv is the environment of the tools: a private home and configuration, so no
// developer setting changes what is measured.
func copyToolEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "DOCKER_CONFIG", "XDG_CONFIG_HOME", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"))
}

// runCopyTool runs a tool and returns the CPU time it used.
func runCopyTool(ctx context.Context, timeout time.Duration, env []string, bin string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tailString(out.String(), 4096))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// checkCopied asks berth for the digest the destination serves.
func checkCopied(ctx context.Context, env CopyEnv, toolEnv []string, ref, want string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Berth, "inspect", "--json", ref)
	cmd.Env = toolEnv
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("inspect %s: %v", ref, err)
	}
	var r struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("inspect %s: %v", ref, err)
	}
	if r.Digest != want {
		return fmt.Errorf("%s is %s, want %s", ref, r.Digest, want)
	}
	return nil
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// deleteCopied deletes a copy's manifest and blobs from its repository.
func deleteCopied(ctx context.Context, registry, repo string, img copyImage) error {
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Minute}
	paths := []string{"/manifests/" + img.manifest}
	for _, b := range img.blobs {
		paths = append(paths, "/blobs/"+b)
	}
	for _, p := range paths {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+registry+"/v2/"+repo+p, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("DELETE %s%s: %s", repo, p, resp.Status)
		}
	}
	return nil
}

// copyImage is the generated image: its manifest digest, its config and layer digests,
// and their size.
type copyImage struct {
	manifest string
	blobs    []string
	bytes    int64
}

// writeCopyImage writes an OCI layout holding one image, tagged v1, of size bytes of
// random data split into n layers. Each layer is a tar of one file in a gzip stream of
// stored (uncompressed) blocks: valid gzip, so no tool recompresses it, and cheap to make.
func writeCopyImage(dir string, size int64, n int) (copyImage, error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return copyImage{}, err
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	put := func(data []byte) (string, error) {
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		return "sha256:" + hexSum, os.WriteFile(filepath.Join(blobs, hexSum), data, 0o644)
	}
	var img copyImage
	var layers []desc
	var diffIDs []string
	total := int64(0)
	rng := rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'})
	for i := range n {
		part := size / int64(n)
		if i == n-1 {
			part = size - part*int64(n-1)
		}
		d, diffID, err := writeCopyLayer(blobs, i, part, rng)
		if err != nil {
			return copyImage{}, err
		}
		layers = append(layers, desc{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: d.digest, Size: d.size})
		diffIDs = append(diffIDs, diffID)
		img.blobs = append(img.blobs, d.digest)
		total += d.size
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return copyImage{}, err
	}
	cfgDigest, err := put(cfg)
	if err != nil {
		return copyImage{}, err
	}
	total += int64(len(cfg))
	img.blobs = append(img.blobs, cfgDigest)
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfgDigest, Size: int64(len(cfg))},
		"layers":        layers,
	})
	if err != nil {
		return copyImage{}, err
	}
	manDigest, err := put(man)
	if err != nil {
		return copyImage{}, err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manDigest, "size": len(man),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": "v1"},
		}},
	})
	if err != nil {
		return copyImage{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return copyImage{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return copyImage{}, err
	}
	img.manifest, img.bytes = manDigest, total
	return img, nil
}

type copyBlob struct {
	digest string
	size   int64
}

// writeCopyLayer writes one layer into blobs and returns it and its diff ID.
func writeCopyLayer(blobs string, i int, size int64, rng io.Reader) (copyBlob, string, error) {
	f, err := os.CreateTemp(blobs, ".layer-*")
	if err != nil {
		return copyBlob{}, "", err
	}
	defer os.Remove(f.Name()) // after the rename, nothing
	compressed := sha256.New()
	counter := &copyCounter{}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(f, compressed, counter), gzip.NoCompression)
	if err != nil {
		f.Close()
		return copyBlob{}, "", err
	}
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, uncompressed))
	if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/layer%d.bin", i), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		f.Close()
		return copyBlob{}, "", err
	}
	if _, err := io.CopyN(tw, rng, size); err != nil {
		f.Close()
		return copyBlob{}, "", err
	}
	err = errors.Join(tw.Close(), zw.Close(), f.Close())
	if err != nil {
		return copyBlob{}, "", err
	}
	hexSum := hex.EncodeToString(compressed.Sum(nil))
	if err := os.Rename(f.Name(), filepath.Join(blobs, hexSum)); err != nil {
		return copyBlob{}, "", err
	}
	return copyBlob{digest: "sha256:" + hexSum, size: counter.n}, "sha256:" + hex.EncodeToString(uncompressed.Sum(nil)), nil
}

type copyCounter struct{ n int64 }

func (c *copyCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
