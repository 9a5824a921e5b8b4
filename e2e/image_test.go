package e2e

import (
	"archive/tar"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfileImage returns the Dockerfile the image test builds: the repository's prebuilt
// stage, as the stage the final one copies from, and its final stage as it is. The classic
// builder (the engine here has no BuildKit) runs every stage before its target, and the
// golang stage cannot run on a machine that pulls no images or runs no containers; what goes
// into the image is the final stage's, which this keeps verbatim.
func dockerfileImage(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(suite.root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM `)
	starts := from.FindAllStringIndex(string(data), -1)
	var prebuilt, final string
	for i, s := range starts {
		end := len(data)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		stage := string(data[s[0]:end])
		if strings.HasPrefix(stage, "FROM scratch AS prebuilt\n") {
			prebuilt = strings.Replace(stage, "AS prebuilt", "AS rootfs", 1)
		}
		if i == len(starts)-1 {
			final = stage
		}
	}
	if prebuilt == "" || !strings.Contains(final, "--from=rootfs") {
		t.Fatalf("the Dockerfile has no prebuilt stage or its final stage does not copy from rootfs:\n%s", data)
	}
	return prebuilt + final
}

// TestDockerImage builds berth's image with the Docker engine from the suite's binary (built
// with CGO_ENABLED=0) and this machine's CA bundle, through the Dockerfile's prebuilt stage, and
// checks its configuration (user, entrypoint, command, port, volume) and its files.
func TestDockerImage(t *testing.T) {
	t.Parallel()
	lookPath(t, "docker")
	certs := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(certs); err != nil {
		missing(t, "no CA bundle at %s: %v", certs, err)
	}
	engine := startDockerd(t)
	docker := engine.client(t)

	ctxDir := t.TempDir()
	rootfs := filepath.Join(ctxDir, "rootfs")
	// The suite's binary, built with CGO_ENABLED=0 (buildBerth).
	bin := filepath.Join(rootfs, "usr", "local", "bin", "berth")
	copyTestFile(t, berthBinary(t), bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open(bin); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has a dynamic loader: not built with CGO_ENABLED=0")
			}
		}
		f.Close()
	}
	copyTestFile(t, certs, filepath.Join(rootfs, "etc", "ssl", "certs", "ca-certificates.crt"))
	writeFile(t, filepath.Join(rootfs, "etc"), "passwd", []byte("berth:x:65532:65532:berth:/data:/sbin/nologin\n"))
	writeFile(t, filepath.Join(rootfs, "etc"), "group", []byte("berth:x:65532:\n"))
	if err := os.MkdirAll(filepath.Join(ctxDir, "volume"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, ctxDir, "Dockerfile", []byte(dockerfileImage(t)))

	const ref = "berth-e2e/berth:test"
	docker.run("build", "-t", ref, ctxDir)

	var cfg []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			Env          []string
		}
		Os, Architecture string
	}
	if err := json.Unmarshal([]byte(docker.run("image", "inspect", ref)), &cfg); err != nil || len(cfg) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	c := cfg[0].Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (not root)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/berth"}) {
		t.Errorf("Entrypoint = %q", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"serve", "--addr", "0.0.0.0:5000", "--data", "/data"}) {
		t.Errorf("Cmd = %q", c.Cmd)
	}
	if _, ok := c.ExposedPorts["5000/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts = %v, want 5000/tcp", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("Volumes = %v, want /data", c.Volumes)
	}
	if cfg[0].Os != "linux" {
		t.Errorf("Os = %q", cfg[0].Os)
	}

	// The files: the binary, the CA bundle, the user, and /data owned by that user.
	files := imageFiles(t, docker, ref)
	for _, want := range []string{"usr/local/bin/berth", "etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", "data"} {
		h, ok := files[want]
		if !ok {
			t.Errorf("the image has no /%s", want)
			continue
		}
		switch want {
		case "usr/local/bin/berth":
			if h.Mode&0o111 == 0 || h.Uid != 0 {
				t.Errorf("/%s: mode %o, uid %d; want executable, owned by root", want, h.Mode, h.Uid)
			}
		case "data":
			if h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
				t.Errorf("/data: type %c, owner %d:%d; want a directory owned by 65532:65532", h.Typeflag, h.Uid, h.Gid)
			}
		}
	}
}

// imageFiles returns the headers of the files in ref's layers, by path, from docker save.
func imageFiles(t testing.TB, docker *tool, ref string) map[string]*tar.Header {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.tar")
	docker.run("image", "save", "-o", out, ref)
	layers := map[string][]byte{}
	var manifest []struct{ Layers []string }
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "manifest.json" {
			if err := json.Unmarshal(b, &manifest); err != nil {
				t.Fatal(err)
			}
		} else {
			layers[h.Name] = b
		}
	}
	if len(manifest) != 1 {
		t.Fatalf("docker save: manifest.json lists %d images", len(manifest))
	}
	files := map[string]*tar.Header{}
	for _, l := range manifest[0].Layers {
		lr := tar.NewReader(strings.NewReader(string(layers[l])))
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l, err)
			}
			files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = h
		}
	}
	return files
}
