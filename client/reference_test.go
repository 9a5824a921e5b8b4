package client_test

import (
	"errors"
	"testing"

	"github.com/berthhq/berth/client"
)

func TestParseReference(t *testing.T) {
	t.Parallel()
	const dg = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, tt := range []struct {
		in                       string
		registry, repo, tag, dgs string
		full, familiar           string
	}{
		{"ubuntu", "docker.io", "library/ubuntu", "latest", "", "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		{"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", "", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"},
		{"user/app", "docker.io", "user/app", "latest", "", "docker.io/user/app:latest", "user/app:latest"},
		{"docker.io/library/ubuntu", "docker.io", "library/ubuntu", "latest", "", "docker.io/library/ubuntu:latest", "ubuntu:latest"},
		{"localhost:5000/x", "localhost:5000", "x", "latest", "", "localhost:5000/x:latest", "localhost:5000/x:latest"},
		{"localhost/x:1", "localhost", "x", "1", "", "localhost/x:1", "localhost/x:1"},
		{"127.0.0.1:5000/team/app:v2", "127.0.0.1:5000", "team/app", "v2", "", "127.0.0.1:5000/team/app:v2", "127.0.0.1:5000/team/app:v2"},
		{"ghcr.io/o/r@" + dg, "ghcr.io", "o/r", "", dg, "ghcr.io/o/r@" + dg, "ghcr.io/o/r@" + dg},
		{"ubuntu:22.04@" + dg, "docker.io", "library/ubuntu", "22.04", dg, "docker.io/library/ubuntu:22.04@" + dg, "ubuntu:22.04@" + dg},
		{"[::1]:5000/x", "[::1]:5000", "x", "latest", "", "[::1]:5000/x:latest", "[::1]:5000/x:latest"},
	} {
		r, err := client.ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if r.Registry != tt.registry || r.Repository != tt.repo || r.Tag != tt.tag || string(r.Digest) != tt.dgs {
			t.Errorf("ParseReference(%q) = %+v", tt.in, r)
		}
		if r.String() != tt.full || r.Familiar() != tt.familiar {
			t.Errorf("ParseReference(%q): String %q, Familiar %q; want %q, %q", tt.in, r, r.Familiar(), tt.full, tt.familiar)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("%q: Validate: %v", tt.in, err)
		}
	}
	for _, bad := range []string{"", "Ubuntu", "ubuntu:", "a/b@sha256:short", "x/UPPER", "x::y", "-lead"} {
		if r, err := client.ParseReference(bad); !errors.Is(err, client.ErrInvalidReference) {
			t.Errorf("ParseReference(%q) = %+v, %v; want ErrInvalidReference", bad, r, err)
		}
	}
	if _, err := client.ParseRepository("ubuntu:1"); !errors.Is(err, client.ErrInvalidReference) {
		t.Errorf("ParseRepository with a tag: %v", err)
	}
	if r, err := client.ParseRepository("ubuntu"); err != nil || r.Name() != "docker.io/library/ubuntu" || r.Tag != "" {
		t.Errorf("ParseRepository(ubuntu) = %+v, %v", r, err)
	}
}

func TestSplitSearchTerm(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]string{
		"nginx":                {"docker.io", "nginx"},
		"user/app":             {"docker.io", "user/app"},
		"localhost:5000/app":   {"localhost:5000", "app"},
		"registry.example/a/b": {"registry.example", "a/b"},
		"localhost/app":        {"localhost", "app"},
		"127.0.0.1:5000/x":     {"127.0.0.1:5000", "x"},
	} {
		if r, term := client.SplitSearchTerm(in); r != want[0] || term != want[1] {
			t.Errorf("SplitSearchTerm(%q) = %q, %q", in, r, term)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	t.Parallel()
	// Normalised as containerd does.
	for in, want := range map[string]string{
		"linux/arm64/v8": "linux/arm64",
		"linux/aarch64":  "linux/arm64",
		"linux/x86_64":   "linux/amd64",
		"x86_64":         "linux/amd64",
		"arm64":          "linux/arm64",
		"Linux/AMD64":    "linux/amd64",
		"linux/arm/v6":   "linux/arm/v6",
		"windows/amd64":  "windows/amd64",
	} {
		p, err := client.ParsePlatform(in)
		if err != nil || client.PlatformString(p) != want {
			t.Errorf("ParsePlatform(%q) = %+v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "linux/", "/amd64", "a/b/c/d", "linux/arm64/", "linux amd64"} {
		if _, err := client.ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) accepted", bad)
		}
	}
	arm64 := client.Platform{OS: "linux", Architecture: "arm64"}
	for _, tc := range []struct {
		want  client.Platform
		entry *client.Platform
		match bool
	}{
		{arm64, &client.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{client.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, &client.Platform{OS: "linux", Architecture: "arm64"}, true},
		{arm64, &client.Platform{OS: "linux", Architecture: "aarch64"}, true},
		{client.Platform{OS: "linux", Architecture: "x86_64"}, &client.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, true},
		{client.Platform{OS: "linux", Architecture: "arm64", Variant: "v7"}, &client.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, false},
		{client.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, &client.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{arm64, &client.Platform{OS: "windows", Architecture: "arm64"}, false},
		{arm64, nil, false},
	} {
		if got := client.PlatformMatches(tc.want, tc.entry); got != tc.match {
			t.Errorf("PlatformMatches(%+v, %+v) = %v", tc.want, tc.entry, got)
		}
	}
}
