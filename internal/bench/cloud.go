package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/opencontainers/go-digest"
	"google.golang.org/api/option"
)

// WorkCloud is the workload of berth's gcs and azure drivers on their
// emulators, beside berth's s3 driver on MinIO.
const WorkCloud = "cloud"

// Azurite's well-known development account.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// emulatorProc is an emulator process started by the harness.
type emulatorProc struct {
	addr string
	cmd  *exec.Cmd
	done chan error
}

// startEmulatorProc runs args (binary first) logging into dir, and waits
// until GET readyPath on it answers one of the ready statuses.
func startEmulatorProc(ctx context.Context, dir, name, addr, readyPath string, args []string, ready ...int) (*emulatorProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	e := &emulatorProc{addr: addr, cmd: cmd, done: make(chan error, 1)}
	go func() { e.done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + readyPath)
		if err == nil {
			resp.Body.Close()
			for _, s := range ready {
				if resp.StatusCode == s {
					return e, nil
				}
			}
		}
		select {
		case err := <-e.done:
			return nil, fmt.Errorf("%s exited at start: %v (log: %s)", name, err, lf.Name())
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("%s not live within a minute (log: %s)", name, lf.Name())
		}
	}
}

// Stop stops the emulator.
func (e *emulatorProc) Stop() {
	if e == nil || e.cmd == nil {
		return
	}
	stopProcess(e.cmd.Process, e.done, syscall.SIGTERM, 10*time.Second)
	e.cmd = nil
}

// azuriteBin installs Azurite with install-azurite.sh and returns the path
// of azurite-blob, which the script prints.
func azuriteBin(ctx context.Context, r *runner) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(filepath.Dir(root), "shared", "tools", "install-azurite.sh"))
	cmd.Stderr = r.log
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("install-azurite.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if !executableFile(p) {
		return "", fmt.Errorf("install-azurite.sh printed no azurite-blob (%q)", p)
	}
	return p, nil
}

// cloudWorkload pushes and pulls one large blob with berth on
// fake-gcs-server and on Azurite, each beside berth on MinIO.
func (r *runner) cloudWorkload(ctx context.Context, rep *Report) error {
	berth, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	minioBin, err := sharedTool(ctx, r.log, "install-peers.sh", "minio", "minio", "")
	if err != nil {
		return notRun{what: "blob push and GET on the cloud emulators", why: err.Error()}
	}
	gcsBin, err := sharedTool(ctx, r.log, "install-peers.sh", "fake-gcs-server", "fake-gcs-server", "")
	if err != nil {
		return notRun{what: "blob push and GET on fake-gcs-server", why: err.Error()}
	}
	azBin, err := azuriteBin(ctx, r)
	if err != nil {
		return notRun{what: "blob push and GET on Azurite", why: err.Error()}
	}
	m, err := startMinIO(ctx, minioBin, filepath.Join(r.dir, "cloud-minio"))
	if err != nil {
		return err
	}
	defer m.Stop()
	if err := m.CreateBucket(ctx, "berth"); err != nil {
		return err
	}
	defer func() {
		if !r.cfg.Keep {
			for _, p := range []string{"cloud-minio", "cloud-gcs", "cloud-azurite", "cloud-berth-s3", "cloud-berth-gcs", "cloud-berth-azure"} {
				_ = removeAll(filepath.Join(r.dir, p), 4)
			}
		}
	}()
	s3cfg := berthS3Config(m.Endpoint, "berth")

	// fake-gcs-server, keeping objects on disk like MinIO.
	addr, err := freePort()
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(addr, ":")
	gdir := filepath.Join(r.dir, "cloud-gcs")
	g, err := startEmulatorProc(ctx, gdir, "fake-gcs-server", addr, "/storage/v1/b?project=bench",
		[]string{gcsBin, "-scheme", "http", "-host", "127.0.0.1", "-port", port, "-backend", "filesystem",
			"-filesystem-root", filepath.Join(gdir, "data"), "-public-host", addr, "-external-url", "http://" + addr, "-log-level", "warn"},
		http.StatusOK)
	if err != nil {
		return err
	}
	defer g.Stop()
	gc, err := storage.NewClient(ctx, option.WithEndpoint("http://"+addr+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		return err
	}
	defer gc.Close()
	if err := gc.Bucket("berth").Create(ctx, "bench", nil); err != nil {
		return fmt.Errorf("create bucket on fake-gcs-server: %w", err)
	}
	gcsCfg := fmt.Sprintf("storage:\n  driver: gcs\n  gcs:\n    endpoint: http://%s\n    bucket: berth\n    anonymous: true\n", addr)
	if err := r.cloudSection(ctx, rep, berth, "fake-gcs-server", gcsCfg, s3cfg,
		"berth with `storage.driver: gcs` (default 16 MiB parts, composed on the server at the end) on fake-gcs-server v1.56.1 (install-peers.sh; filesystem backend on the same disk), beside berth with `storage.driver: s3` (default 32 MiB parts) on MinIO (single drive, same disk)."); err != nil {
		return err
	}
	g.Stop()

	// Azurite, with its own data directory.
	addr, err = freePort()
	if err != nil {
		return err
	}
	_, port, _ = strings.Cut(addr, ":")
	adir := filepath.Join(r.dir, "cloud-azurite")
	a, err := startEmulatorProc(ctx, adir, "azurite", addr, "/"+azuriteAccount+"?comp=list",
		[]string{azBin, "--blobHost", "127.0.0.1", "--blobPort", port, "--location", filepath.Join(adir, "data"),
			"--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"},
		http.StatusForbidden, http.StatusUnauthorized)
	if err != nil {
		return err
	}
	defer a.Stop()
	endpoint := "http://" + addr + "/" + azuriteAccount
	cred, err := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		return err
	}
	ac, err := azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, nil)
	if err != nil {
		return err
	}
	if _, err := ac.CreateContainer(ctx, "berth", nil); err != nil {
		return fmt.Errorf("create container on Azurite: %w", err)
	}
	azCfg := fmt.Sprintf("storage:\n  driver: azure\n  azure:\n    endpoint: %s\n    accountName: %s\n    accountKey: %s\n    container: berth\n",
		endpoint, azuriteAccount, strconv.Quote(azuriteKey))
	return r.cloudSection(ctx, rep, berth, "Azurite", azCfg, s3cfg,
		"berth with `storage.driver: azure` (default 16 MiB blocks, committed as a block list at the end) on Azurite 3.37.0 (install-azurite.sh, from npm; its own data directory on the same disk), beside berth with `storage.driver: s3` (default 32 MiB parts) on MinIO (single drive, same disk).")
}

// cloudSection times a monolithic push and a GET of one large blob on berth
// configured with cfg, beside berth on MinIO (peerCfg), taking turns.
func (r *runner) cloudSection(ctx context.Context, rep *Report, berth, emulator, cfg, peerCfg, about string) error {
	r.stopPair()
	tag := strings.ToLower(strings.SplitN(emulator, "-", 2)[0])
	b := newConfiguredBerth(berth, filepath.Join(r.dir, "cloud-berth-"+tag), "berth", cfg)
	p := newConfiguredBerth(berth, filepath.Join(r.dir, "cloud-berth-s3-"+tag), "berth-s3", peerCfg)
	b.label, p.label = "cloud", "cloud"
	r.servers = []*Server{b, p}
	if err := r.startServers(ctx, b, p); err != nil {
		r.servers = nil
		return err
	}
	r.clients = []*Client{NewClient(b.URL(), 128), NewClient(p.URL(), 128)}
	defer r.stopPair()

	size := r.sz.S3Blob
	name := sizeName(size) + " blob on " + emulator
	r.logf("%s: generating content", name)
	data := make([]byte, size)
	fillRandom(data, r.salt+13)
	bl := newBlob(data, r.salt+13)
	repo := "bench/" + tag
	var push, pushRSS, get, getRSS measurement
	var last [2]digest.Digest
	r.logf("%s: monolithic push", name)
	err := r.alternate(ctx, tag+" monolithic push", false, &pushRSS, func(i int, s *Server, c *Client) error {
		dg := bl.Next()
		syncAll()
		start := time.Now()
		if err := c.PushMonolithic(ctx, repo, bytes.NewReader(data), size, dg); err != nil {
			return err
		}
		rate := Rate(size, time.Since(start))
		push.add(i, rate)
		r.logf("  %-12s %7.1f MiB/s", s.Name, rate)
		if last[i] != "" {
			deleteBlob(ctx, c, repo, last[i])
		}
		last[i] = dg
		return nil
	})
	if err != nil {
		return err
	}
	for i, c := range r.clients {
		if _, err := c.GetBlob(ctx, repo, last[i], size); err != nil {
			return fmt.Errorf("verifying GET on %s: %w", r.servers[i].Name, err)
		}
	}
	r.logf("%s: GET", name)
	err = r.alternate(ctx, tag+" GET", false, &getRSS, func(i int, s *Server, c *Client) error {
		el, err := c.GetBlobDiscard(ctx, repo, last[i], size)
		if err != nil {
			return err
		}
		rate := Rate(size, el)
		get.add(i, rate)
		r.logf("  %-12s %7.1f MiB/s", s.Name, rate)
		return nil
	})
	if err != nil {
		return err
	}
	const peer = "berth on MinIO"
	rep.Sections = append(rep.Sections, Section{
		Name:  name,
		About: about + fmt.Sprintf(" One client pushes a %s blob as a monolithic upload and GETs it (warm, discarding the body), taking turns. The distribution column holds berth on MinIO here.", sizeName(size)),
		Rows: []Row{
			{Metric: "monolithic push", Unit: "MiB/s", Berth: push.median(0), Dist: push.median(1), Peer: peer},
			{Metric: "GET", Unit: "MiB/s", Berth: get.median(0), Dist: get.median(1), Peer: peer},
			{Metric: "peak RSS, monolithic push", Unit: "MiB", Berth: pushRSS.max(0), Dist: pushRSS.max(1), LowerIsBetter: true, Peer: peer},
			{Metric: "peak RSS, GET", Unit: "MiB", Berth: getRSS.max(0), Dist: getRSS.max(1), LowerIsBetter: true, Peer: peer},
		},
	})
	return nil
}
