package bench

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wrkOutput = `Running 5s test @ http://127.0.0.1:40000/v2/bench/manifest/manifests/latest
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  12.34ms   89.00%
    Req/Sec    12.34k     1.23k   15.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.40ms
     90%    1.80ms
     99%    3.20ms
  123456 requests in 5.00s, 45.67MB read
Requests/sec:  24690.12
Transfer/sec:      9.13MB
`

func TestParseWrk(t *testing.T) {
	t.Parallel()
	r, err := ParseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{
		Requests:  123456,
		ReqPerSec: 24690.12,
		P50:       850 * time.Microsecond,
		P75:       1400 * time.Microsecond,
		P90:       1800 * time.Microsecond,
		P99:       3200 * time.Microsecond,
	}
	if r != want {
		t.Errorf("ParseWrk = %+v, want %+v", r, want)
	}
}

func TestParseWrkErrors(t *testing.T) {
	t.Parallel()
	out := strings.Replace(wrkOutput, "Requests/sec:", "  Non-2xx or 3xx responses: 17\n  Socket errors: connect 1, read 2, write 3, timeout 4\nRequests/sec:", 1)
	r, err := ParseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Non2xx != 17 || r.SocketErrors != 10 {
		t.Errorf("Non2xx, SocketErrors = %d, %d; want 17, 10", r.Non2xx, r.SocketErrors)
	}
}

func TestParseWrkUnits(t *testing.T) {
	t.Parallel()
	out := strings.NewReplacer("850.00us", "1.50s", "3.20ms", "2.00m").Replace(wrkOutput)
	r, err := ParseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.P50 != 1500*time.Millisecond || r.P99 != 2*time.Minute {
		t.Errorf("P50, P99 = %v, %v; want 1.5s, 2m", r.P50, r.P99)
	}
}

func TestParseWrkIncomplete(t *testing.T) {
	t.Parallel()
	for name, out := range map[string]string{
		"no latency distribution": strings.Join(strings.Split(wrkOutput, "\n")[:5], "\n") + "\n  123 requests in 1.00s, 1MB read\nRequests/sec: 123.00\n",
		"no rate":                 strings.Replace(wrkOutput, "Requests/sec:  24690.12", "", 1),
		"bad latency":             strings.Replace(wrkOutput, "3.20ms", "3.20parsecs", 1),
		"empty":                   "",
	} {
		if _, err := ParseWrk(out); err == nil {
			t.Errorf("%s: ParseWrk succeeded", name)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	t.Parallel()
	args, script := WrkOptions{
		URL: "http://x/", Method: "HEAD", Threads: 2, Connections: 32, Duration: 5 * time.Second,
		Header: map[string]string{"B": "2", "A": "1"},
	}.args()
	got := strings.Join(args, " ")
	want := "--latency -t 2 -c 32 -d 5s --timeout 10s -H A: 1 -H B: 2"
	if got != want {
		t.Errorf("args = %q, want %q", got, want)
	}
	if script != "wrk.method = \"HEAD\"\n" {
		t.Errorf("script = %q", script)
	}
	if _, script := (WrkOptions{URL: "http://x/"}).args(); script != "" {
		t.Errorf("GET needs no script, got %q", script)
	}
}

func TestMedianPercentile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		xs     []float64
		median float64
		p99    float64
	}{
		{[]float64{3}, 3, 3},
		{[]float64{5, 1, 3}, 3, 4.96},
		{[]float64{4, 1, 3, 2}, 2.5, 3.97},
		{[]float64{10, 10, 10, 10, 1000}, 10, 960.4},
	}
	for _, tc := range tests {
		if got := Median(tc.xs); got != tc.median {
			t.Errorf("Median(%v) = %v, want %v", tc.xs, got, tc.median)
		}
		if got := Percentile(tc.xs, 50); got != tc.median {
			t.Errorf("Percentile(%v, 50) = %v, want %v", tc.xs, got, tc.median)
		}
		if got := Percentile(tc.xs, 99); math.Abs(got-tc.p99) > 1e-9 {
			t.Errorf("Percentile(%v, 99) = %v, want %v", tc.xs, got, tc.p99)
		}
	}
	xs := []float64{3, 1, 2}
	Median(xs)
	if xs[0] != 3 || xs[1] != 1 {
		t.Errorf("Median reordered its argument: %v", xs)
	}
	for _, v := range []float64{Median(nil), Percentile(nil, 50), Percentile(xs, 101), Max(nil)} {
		if !math.IsNaN(v) {
			t.Errorf("want NaN for no data or a bad percentile, got %v", v)
		}
	}
	if got := Percentile([]float64{1, 2, 3}, 0); got != 1 {
		t.Errorf("Percentile(0) = %v, want the minimum", got)
	}
	if got := Percentile([]float64{1, 2, 3}, 100); got != 3 {
		t.Errorf("Percentile(100) = %v, want the maximum", got)
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	if got := Rate(1<<30, 4*time.Second); got != 256 {
		t.Errorf("Rate = %v, want 256 MiB/s", got)
	}
	if !math.IsNaN(Rate(1, 0)) {
		t.Error("Rate over no time should be NaN")
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{
		0.004: "0.00", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 24690.12: "24,690",
		1234567: "1,234,567", -2500: "-2,500", math.NaN(): "n/a",
	} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{1.5: "1.50×", 0.25: "0.25×", 73.9: "73×", 2.9996: "2.99×", 1.59: "1.59×", 0.29: "0.29×", 0.00843: "0.0084×", 0.031: "0.031×", math.Inf(1): "n/a"} {
		if got := formatRatio(v); got != want {
			t.Errorf("formatRatio(%v) = %q, want %q", v, got, want)
		}
	}
	for n, want := range map[int64]string{1 << 30: "1 GiB", 16 << 20: "16 MiB", 1536: "1536 bytes", 3 << 10: "3 KiB"} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", n, got, want)
		}
	}
}

func sampleReport() *Report {
	return &Report{
		Date:      time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Duration:  9*time.Minute + 30*time.Second,
		Reps:      3,
		PushBytes: 1 << 30,
		Machine:   Machine{CPU: "Some CPU | 2GHz", Cores: 2, MemoryGiB: 24, Kernel: "Linux 6.1", GoVersion: "go1.26", Filesystem: "ext4 on /dev/vda", LoadAvg: "1.00 2.00 3.00"},
		Limits:    Limits{SHA256: 1000, DiskBuffered: 2000, DiskDurable: 250, DiskBytes: 1 << 30},
		BerthPush: 225, DistPush: 150,
		Sections: []Section{{
			Name:  "1 GiB blob",
			About: "One client pushes.",
			Rows: []Row{
				{Metric: "monolithic push", Unit: "MiB/s", Berth: 225, Dist: 150, Target: &Target{Text: "push ≥ 1.5× distribution", Met: true}},
				{Metric: "GET", Unit: "MiB/s", Berth: 900, Dist: 1000, Target: &Target{Text: "GET ≥ distribution", Met: false}},
				{Metric: "peak RSS", Unit: "MiB", Berth: 20, Dist: 40, LowerIsBetter: true},
			},
		}},
		NotRun: []string{"Cache: not run: no cache connector yet"},
		Method: []string{"Alternating runs."},
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	md := sampleReport().Markdown()
	for _, want := range []string{
		"# Benchmarks\n",
		"median of 3 runs per server",
		"| CPU | Some CPU \\| 2GHz, 2 cores |",
		"| Run | 2026-01-02 03:04 UTC, took 9m30s |",
		"| **Upload bound**: min(SHA-256, disk with fsync) | 250 |",
		"| berth, 1 GiB monolithic push | 225 (90 % of the bound) |",
		"| distribution, 1 GiB monolithic push | 150 (60 % of the bound) |",
		"| push ≥ 1.5× distribution | 225 MiB/s | 150 MiB/s | 1.50× | met |",
		"| GET ≥ distribution | 900 MiB/s | 1,000 MiB/s | 0.90× | **missed** |",
		"### 1 GiB blob\n\nOne client pushes.\n",
		"| peak RSS (lower is better) | 20.0 MiB | 40.0 MiB | 0.50× |  |",
		"## Not run\n\n- Cache: not run: no cache connector yet\n",
		"## How it is measured\n\n- Alternating runs.\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// The targets table lists only rows with a target.
	targets := md[strings.Index(md, "## Targets"):strings.Index(md, "## Workloads")]
	if strings.Contains(targets, "peak RSS") {
		t.Errorf("targets table lists a row without a target:\n%s", targets)
	}
	if strings.Contains(md, "Smoke run") {
		t.Error("a full run is marked as a smoke run")
	}
	r := sampleReport()
	r.Quick, r.Reps = true, 1
	md = r.Markdown()
	if !strings.Contains(md, "Smoke run") || !strings.Contains(md, "from one run per server") {
		t.Errorf("quick report not marked as such:\n%s", md)
	}
}

func TestWriteReportKeepsNotes(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := WriteReport(p, "# Old\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	notes := "\n## Notes\n\nWhat limits the push.\n"
	if err := os.WriteFile(p, append(b, notes...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(p, "# New\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	got := string(b)
	if !strings.HasPrefix(got, "# New\n") || strings.Contains(got, "# Old") {
		t.Errorf("generated part not replaced:\n%s", got)
	}
	if !strings.HasSuffix(got, NotesMarker+"\n"+notes) {
		t.Errorf("notes not kept:\n%s", got)
	}
}

func TestBlobNext(t *testing.T) {
	t.Parallel()
	data := make([]byte, 1000)
	fillRandom(data, 7)
	b := newBlob(data, 42)
	seen := map[string]bool{}
	for range 3 {
		d := b.Next()
		sum := sha256.Sum256(data)
		if d.Encoded() != hex.EncodeToString(sum[:]) {
			t.Fatalf("Next = %s, content has sha256:%x", d, sum)
		}
		if seen[d.String()] {
			t.Fatalf("Next repeated %s", d)
		}
		seen[d.String()] = true
	}
	other := make([]byte, 1000)
	fillRandom(other, 7)
	if !bytes.Equal(other[:992], data[:992]) {
		t.Error("fillRandom is not deterministic")
	}
}

func TestReadHeadResponse(t *testing.T) {
	t.Parallel()
	in := "HTTP/1.1 200 OK\r\nContent-Length: 402\r\nEtag: x\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	for _, want := range []int{200, 404} {
		got, err := readHeadResponse(br)
		if err != nil || got != want {
			t.Fatalf("readHeadResponse = %d, %v; want %d", got, err, want)
		}
	}
	if _, err := readHeadResponse(br); err == nil {
		t.Error("want an error at the end of the stream")
	}
	if _, err := readHeadResponse(bufio.NewReader(strings.NewReader("SSH-2.0\r\n\r\n"))); err == nil {
		t.Error("want an error for a malformed status line")
	}
}

func TestNextLink(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("http://127.0.0.1:5000/v2/_catalog?n=2")
	got, err := nextLink(base, `</v2/_catalog?last=b&n=2>; rel="next"`)
	if err != nil || got != "http://127.0.0.1:5000/v2/_catalog?last=b&n=2" {
		t.Errorf("nextLink = %q, %v", got, err)
	}
	if _, err := nextLink(base, `</x>; rel="prev"`); err == nil {
		t.Error("want an error without rel=next")
	}
}

func TestProcParsing(t *testing.T) {
	t.Parallel()
	if got := cpuModel("processor\t: 0\nvendor_id\t: X\nmodel name\t: AMD EPYC 7B13\n"); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if kb, ok := meminfoKB("MemFree: 5 kB\nVmHWM:\t  20480 kB\n", "VmHWM"); !ok || kb != 20480 {
		t.Errorf("meminfoKB = %d, %v", kb, ok)
	}
	if _, ok := meminfoKB("VmRSS: 1 kB\n", "VmHWM"); ok {
		t.Error("meminfoKB found a missing field")
	}
	if got := unescapeMount(`/mnt/a\040b`); got != "/mnt/a b" {
		t.Errorf("unescapeMount = %q", got)
	}
	if !within("/tmp/x", "/") || !within("/tmp/x", "/tmp") || within("/tmpfoo", "/tmp") {
		t.Error("within is wrong")
	}
}

func TestDistributionConfig(t *testing.T) {
	t.Parallel()
	c := DistributionConfig("/data/dir with space", "127.0.0.1:5001")
	for _, want := range []string{
		"version: 0.1\n",
		"    rootdirectory: \"/data/dir with space\"\n",
		"  delete:\n    enabled: true\n",
		"  addr: 127.0.0.1:5001\n",
		"    disabled: true\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "cache") {
		t.Errorf("config enables a cache:\n%s", c)
	}
}

func TestCloneTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a", "b", "link"), []byte("sha256:00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, n := range []string{"x", "y", "z"} {
		dsts = append(dsts, filepath.Join(dir, n))
	}
	if err := cloneTree(src, dsts, 2); err != nil {
		t.Fatal(err)
	}
	for _, d := range dsts {
		b, err := os.ReadFile(filepath.Join(d, "a", "b", "link"))
		if err != nil || string(b) != "sha256:00" {
			t.Errorf("%s: link = %q, %v", d, b, err)
		}
		if fi, err := os.Stat(filepath.Join(d, "empty")); err != nil || !fi.IsDir() {
			t.Errorf("%s: empty directory not copied", d)
		}
	}
	if err := cloneTree(src, dsts[:1], 1); err == nil {
		t.Error("cloning onto an existing directory should fail")
	}
}
