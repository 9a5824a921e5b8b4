package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerd is a private Docker engine: its own data root, exec root, socket, containerd
// namespaces and (empty) configuration file, so it cannot collide with another engine on the
// machine.
type dockerd struct {
	t    testing.TB
	dir  string
	sock string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

// startDockerd starts a private engine; extraArgs are added to dockerd's command line (for
// example --registry-mirror).
func startDockerd(t testing.TB, extraArgs ...string) *dockerd {
	t.Helper()
	bin := lookPath(t, "dockerd")
	if os.Geteuid() != 0 {
		missing(t, "the Docker engine needs root")
	}
	// Short path: containerd's sockets live under the exec root and socket paths are limited
	// to 108 bytes.
	dir, err := os.MkdirTemp("", "berth-dk-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, dir: dir, sock: filepath.Join(dir, "docker.sock"), log: &syncBuffer{}, done: make(chan struct{})}
	cfg := writeFile(t, dir, "daemon.json", []byte("{}"))
	ns := filepath.Base(dir)
	d.cmd = exec.Command(bin,
		"--config-file", cfg,
		"--storage-driver", "vfs",
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
		"--userland-proxy=false",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://"+d.sock,
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns+"-plugins",
	)
	d.cmd.Args = append(d.cmd.Args, extraArgs...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	// Its own process group, so that a last-resort kill reaches the containerd it spawns.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start dockerd: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.stop)
	d.waitReady()
	return d
}

// waitReady polls GET /_ping on the engine's socket.
func (d *dockerd) waitReady() {
	d.t.Helper()
	hc := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}},
	}
	deadline := time.Now().Add(90 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dockerd not ready after 90s (last: %v)\n%s", err, tail(d.log.String(), 16<<10))
		}
		select {
		case <-d.done:
			// Without a working engine there is nothing to test: treat it as a missing
			// dependency (for example a machine without the privileges dockerd needs).
			missing(d.t, "dockerd exited at start: %v\n%s", d.err, tail(d.log.String(), 16<<10))
		case <-tick.C:
		}
	}
}

// stop shuts the engine down with SIGTERM, checks that the containerd it started is gone too,
// and removes its directories.
func (d *dockerd) stop() {
	containerdPid := 0
	if b, err := os.ReadFile(filepath.Join(d.dir, "exec", "containerd", "containerd.pid")); err == nil {
		containerdPid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(60 * time.Second):
			d.t.Errorf("dockerd did not stop within 60s of SIGTERM; killing its process group")
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	}
	if containerdPid > 0 {
		gone := pollUntil(30*time.Second, func() bool { return !processAlive(containerdPid) })
		if !gone {
			d.t.Errorf("containerd %d outlived dockerd by 30s; killing it", containerdPid)
			_ = syscall.Kill(containerdPid, syscall.SIGKILL)
		}
	}
	if d.t.Failed() {
		d.t.Logf("dockerd output:\n%s", tail(d.log.String(), 32<<10))
	}
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Errorf("remove dockerd directory: %v", err)
	}
}

// client returns a docker CLI bound to this engine with a private configuration.
func (d *dockerd) client(t testing.TB) *tool {
	t.Helper()
	env := append(clientEnv(t), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONTEXT=", "DOCKER_CLI_HINTS=false")
	cli := newTool(t, lookPath(t, "docker"), env)
	// Without the buildx plugin the CLI refuses BuildKit builds; the classic builder is enough
	// for FROM scratch.
	if _, _, err := cli.exec("buildx", "version"); err != nil {
		cli.env = append(cli.env, "DOCKER_BUILDKIT=0")
	}
	return cli
}

var pushDigest = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: (\d+)`)

// TestDockerEngine pushes an image built by the Docker engine, removes it locally, pulls it
// back, and checks identity on both sides.
func TestDockerEngine(t *testing.T) {
	t.Parallel()
	lookPath(t, "docker")
	engine := startDockerd(t)
	srv := startBerth(t)
	reg := newClient(t, srv)
	docker := engine.client(t)

	files := map[string][]byte{
		"hello.txt":     []byte("hello from berth e2e\n"),
		"data/data.bin": randomBytes(t, 64<<10),
	}
	ctxDir := t.TempDir()
	for name, data := range files {
		writeFile(t, ctxDir, name, data)
	}
	writeFile(t, ctxDir, "Dockerfile", []byte("FROM scratch\nCOPY hello.txt /hello.txt\nCOPY data/data.bin /data/data.bin\nCMD [\"/hello.txt\"]\n"))

	ref := srv.Addr + "/e2e/scratch:v1"
	docker.run("build", "-t", ref, ctxDir)
	imageID := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", ref))

	out := docker.run("push", ref)
	m := pushDigest.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	digest := m[1]
	size, _ := strconv.Atoi(m[2])
	if !slices.Contains(repoDigests(t, docker, ref), srv.Addr+"/e2e/scratch@"+digest) {
		t.Errorf("RepoDigests after push lack %s", digest)
	}

	// What berth stores: the same manifest, the engine's image ID as config, the files.
	body, mt, served := reg.manifest("e2e/scratch", "v1")
	if served != digest || len(body) != size {
		t.Fatalf("berth serves e2e/scratch:v1 as %s (%d bytes), docker pushed %s (%d bytes)", served, len(body), digest, size)
	}
	if mt != mtDockerManifest {
		t.Errorf("Content-Type %q, want %q", mt, mtDockerManifest)
	}
	man := parseManifest(t, body)
	if man.Config == nil || man.Config.Digest != imageID {
		t.Fatalf("manifest config %+v, want image ID %s", man.Config, imageID)
	}
	reg.blob("e2e/scratch", imageID)
	got := map[string][]byte{}
	for _, l := range man.Layers {
		for name, data := range untarGz(t, reg.blob("e2e/scratch", l.Digest)) {
			got[name] = data
		}
	}
	for name, want := range files {
		if !bytes.Equal(got[name], want) {
			t.Errorf("layer file %s: %d bytes, want %d bytes as built", name, len(got[name]), len(want))
		}
	}

	docker.run("rmi", ref)
	if _, _, err := docker.exec("image", "inspect", imageID); err == nil {
		t.Fatalf("image %s still present after docker rmi", imageID)
	}

	docker.run("pull", ref)
	if pulled := strings.TrimSpace(docker.run("image", "inspect", "--format", "{{.Id}}", ref)); pulled != imageID {
		t.Errorf("pulled image ID %s, pushed %s", pulled, imageID)
	}
	if !slices.Contains(repoDigests(t, docker, ref), srv.Addr+"/e2e/scratch@"+digest) {
		t.Errorf("RepoDigests after pull lack %s", digest)
	}
	docker.run("pull", srv.Addr+"/e2e/scratch@"+digest)

	// docker search goes through GET /v1/search.
	found := lines(docker.run("search", "--format", "{{.Name}}", srv.Addr+"/scratch"))
	if !slices.Contains(found, "e2e/scratch") {
		t.Errorf("docker search %s/scratch found %v, want e2e/scratch", srv.Addr, found)
	}
}

func repoDigests(t testing.TB, docker *tool, ref string) []string {
	t.Helper()
	var digests []string
	out := docker.run("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if err := json.Unmarshal([]byte(out), &digests); err != nil {
		t.Fatalf("RepoDigests %q: %v", out, err)
	}
	return digests
}

// processAlive reports whether pid is a live process; a zombie waiting for a parent that does
// not reap it counts as gone.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may contain spaces.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}
