// Command berth-bench measures berth against the CNCF distribution registry
// on this machine and writes the report to docs/BENCHMARKS.md.
//
// It builds berth from the checkout, installs the CNCF registry and wrk
// with the scripts in ../shared/tools, starts both registries on loopback
// with fresh data directories, runs the same workloads against them
// alternately and prints a table of medians with the ratio
// berth/distribution. It also compares berth copy with crane and skopeo,
// berth's cache connector with distribution as a proxy, both registries on
// MinIO, and berth's catalog on PostgreSQL metadata. Run it from anywhere
// inside the checkout:
//
//	go run ./cmd/berth-bench            # the full run, about 10 minutes
//	go run ./cmd/berth-bench -quick     # a smoke run with small sizes
//	go run ./cmd/berth-bench -only manifest -profile /tmp/prof
//
// With -profile DIR, berth is served by this program instead of the berth
// binary (the registry handler over the same storage and metadata
// packages) with a CPU profile and a heap profile per workload written to
// DIR; no report file is written unless -out is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berthhq/berth/internal/bench"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == bench.CeilingCommand {
		if err := bench.ServeCeiling(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "berth-bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == serveProfiledCmd {
		if err := serveProfiled(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "berth-bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "berth-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		quick   = flag.Bool("quick", false, "shrink sizes and counts for a smoke run (implies -reps 1 unless given)")
		reps    = flag.Int("reps", 3, "runs of each workload on each server")
		out     = flag.String("out", "", "write the report here (default: docs/BENCHMARKS.md for a full run, nowhere otherwise; - for nowhere)")
		dir     = flag.String("dir", "", "parent of the run's temporary directory (default: the system's temporary directory)")
		keep    = flag.Bool("keep", false, "keep the run's directory (data, logs, binaries)")
		only    = flag.String("only", "", "comma-separated workloads to run: "+strings.Join(bench.Workloads, ", "))
		profile = flag.String("profile", "", "serve berth from this program and write CPU and heap profiles per workload to this directory")
		berth   = flag.String("berth", "", "run this berth binary instead of building one from the checkout")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: berth-bench [flags]\n\nMeasures berth against the CNCF distribution registry and writes docs/BENCHMARKS.md.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}
	var err error
	repsSet := false
	flag.Visit(func(f *flag.Flag) { repsSet = repsSet || f.Name == "reps" })

	cfg := bench.Config{
		Sizes: bench.FullSizes(),
		Quick: *quick,
		Reps:  *reps,
		Dir:   *dir,
		Keep:  *keep,
		Berth: *berth,
		Log:   os.Stderr,
	}
	if cfg.Self, err = os.Executable(); err != nil {
		return err
	}
	if *quick {
		cfg.Sizes = bench.QuickSizes()
		if !repsSet {
			cfg.Reps = 1
		}
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	root, err := bench.RepoRoot()
	if err != nil {
		return err
	}
	report := *out
	if report == "" && !*quick && *only == "" && *profile == "" {
		report = filepath.Join(root, "docs", "BENCHMARKS.md")
	}
	if report == "-" {
		report = ""
	}
	if *profile != "" {
		pdir, err := filepath.Abs(*profile)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		n := 0
		cfg.BerthCommand = func(addr, dataDir, label string) *exec.Cmd {
			n++
			base := filepath.Join(pdir, fmt.Sprintf("berth-%02d-%s", n, label))
			return exec.Command(self, serveProfiledCmd,
				"-addr", addr, "-data", dataDir,
				"-cpuprofile", base+".cpu.pprof", "-memprofile", base+".heap.pprof")
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	md := rep.Markdown()
	fmt.Print(md)
	if report != "" {
		if err := bench.WriteReport(report, md); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "report written to %s\n", report)
	}
	return nil
}
