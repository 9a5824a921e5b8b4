package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// berthCmd runs the berth binary with stdin and returns its combined output and exit code.
func berthCmd(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("berth %v: %v", args, err)
	return "", -1
}

// TestAuthUserCommand manages users with `berth user` while berth runs: additions, new
// passwords and removals take effect at once, mistakes are refused with a message.
func TestAuthUserCommand(t *testing.T) {
	t.Parallel()
	cfg := exampleConfig(t, "auth-basic.yaml")
	htpasswd := filepath.Join(filepath.Dir(cfg), "htpasswd")
	srv := startAuthBerth(t, cfg, nil)
	raw := &regClient{t: t, base: mustParseURL(t, srv.URL()), hc: srv.httpClient()}
	login := func(user, pass string) int {
		return raw.request("GET", "/v2/", nil, "Authorization", basicAuthz(user, pass)).Status
	}
	if st := login("alice", "first-pw"); st != 401 {
		t.Fatalf("unknown user: %d", st)
	}
	if out, code := berthCmd(t, "first-pw\n", "user", "add", "alice", "--htpasswd", htpasswd, "--password-stdin"); code != 0 {
		t.Fatalf("user add: %d %s", code, out)
	}
	data, _ := os.ReadFile(htpasswd)
	if !strings.Contains(string(data), "alice:$2") || strings.Contains(string(data), "first-pw") {
		t.Fatalf("htpasswd after add:\n%s", data)
	}
	if st := login("alice", "first-pw"); st != 200 {
		t.Fatalf("login right after user add: %d", st)
	}
	// Through --config, which names the file relative to itself.
	if out, code := berthCmd(t, "second-pw\n", "user", "passwd", "alice", "--config", cfg, "--password-stdin"); code != 0 {
		t.Fatalf("user passwd: %d %s", code, out)
	}
	if st := login("alice", "first-pw"); st != 401 {
		t.Errorf("old password after passwd: %d", st)
	}
	if st := login("alice", "second-pw"); st != 200 {
		t.Errorf("new password: %d", st)
	}
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"x\n", []string{"user", "add", "alice", "--password-stdin"}, 1, "already exists"},
		{"x\n", []string{"user", "passwd", "bob", "--password-stdin"}, 1, "no such user"},
		{"", []string{"user", "rm", "bob"}, 1, "no such user"},
		{"x\n", []string{"user", "add", "bob"}, 2, "--password-stdin"},
		{"\n", []string{"user", "add", "bob", "--password-stdin"}, 2, "no password"},
		{"x\n", []string{"user", "add", "anonymous", "--password-stdin"}, 2, "reserved"},
		{"x\n", []string{"user", "add", "a:b", "--password-stdin"}, 2, "':'"},
	} {
		out, code := berthCmd(t, c.stdin, append(c.args, "--htpasswd", htpasswd)...)
		if code != c.code || !strings.Contains(out, c.msg) {
			t.Errorf("berth %v: exit %d, %q; want exit %d mentioning %q", c.args, code, out, c.code, c.msg)
		}
	}
	if out, code := berthCmd(t, "", "user", "rm", "alice", "--htpasswd", htpasswd); code != 0 {
		t.Fatalf("user rm: %d %s", code, out)
	}
	if st := login("alice", "second-pw"); st != 401 {
		t.Errorf("login after user rm: %d", st)
	}
	if st := login(adminUser, adminPass); st != 200 {
		t.Errorf("the other users survive the edits: %d", st)
	}
}

// TestAuthInsecureOpen checks that berth refuses to serve an open registry on a
// non-loopback address unless told to with --insecure-open.
func TestAuthInsecureOpen(t *testing.T) {
	t.Parallel()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	addr := net.JoinHostPort("0.0.0.0", port)
	out, code := berthCmd(t, "", "serve", "--addr", addr, "--data", t.TempDir())
	if code == 0 || !strings.Contains(out, "--insecure-open") || !strings.Contains(out, "auth.mode") || !strings.Contains(out, "not a loopback") {
		t.Fatalf("open registry on %s: exit %d, %q", addr, code, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBinary(t), "serve", "--addr", addr, "--data", t.TempDir(), "--insecure-open")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	status := func() int {
		resp, err := hc.Get("http://127.0.0.1:" + port + "/v2/")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ok := pollUntil(readyTimeout, func() bool {
		select {
		case err := <-done:
			t.Fatalf("berth --insecure-open exited: %v\n%s", err, log.String())
		default:
		}
		return status() == 200
	})
	if !ok {
		t.Fatalf("berth --insecure-open never answered:\n%s", log.String())
	}
	cancel()
	<-done

	// With authentication, a non-loopback address needs no flag.
	_, port, _ = net.SplitHostPort(freeAddr(t))
	cmd = exec.Command(berthBinary(t), "serve", "--config", exampleConfig(t, "auth-basic.yaml"),
		"--addr", net.JoinHostPort("0.0.0.0", port), "--data", t.TempDir())
	var log2 syncBuffer
	cmd.Stdout, cmd.Stderr = &log2, &log2
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if !pollUntil(readyTimeout, func() bool { return status() == 401 }) {
		t.Fatalf("berth with basic auth on 0.0.0.0 never answered 401:\n%s", log2.String())
	}
}
