package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Target is a goal for one row and whether the run met it.
type Target struct {
	Text string
	Met  bool
}

// Row is one measured quantity, for both servers.
type Row struct {
	Metric string
	Unit   string
	// Berth and Dist are the medians (or peaks, for memory) of the runs.
	Berth, Dist   float64
	LowerIsBetter bool
	Target        *Target
	// Peer, when set, names what the Dist column holds instead of
	// distribution (crane, skopeo, the upstream, berth hosted).
	Peer string
	// Ceiling is the same figure of the ceiling server (ceiling.go), or 0
	// when it was not measured.
	Ceiling float64
	// CeilingTarget, when set, is a target stated against the ceiling;
	// Target then stays for one against distribution, if any.
	CeilingTarget *Target
}

// Fraction is berth/ceiling.
func (r Row) Fraction() float64 { return r.Berth / r.Ceiling }

// ceilingCells renders the ceiling and berth/ceiling cells.
func (r Row) ceilingCells() (string, string) {
	if r.Ceiling == 0 {
		return "", ""
	}
	return withUnit(r.Ceiling, r.Unit), formatRatio(r.Fraction())
}

// peerCell renders the Dist value, naming the peer when it is not
// distribution.
func (r Row) peerCell() string {
	if r.Peer == "" {
		return withUnit(r.Dist, r.Unit)
	}
	return r.Peer + ": " + withUnit(r.Dist, r.Unit)
}

// Ratio is berth/distribution.
func (r Row) Ratio() float64 { return r.Berth / r.Dist }

// Section is one workload.
type Section struct {
	Name  string
	About string
	Rows  []Row
}

// Report is everything a run found.
type Report struct {
	Date     time.Time
	Duration time.Duration
	Quick    bool
	Reps     int
	Machine  Machine
	Limits   Limits
	// Push is the 1 GiB monolithic push rate of each server in MiB/s, for
	// the fraction of the upload bound.
	BerthPush, DistPush float64
	PushBytes           int64
	Sections            []Section
	// NotRun lists workloads that were skipped, each with the reason.
	NotRun []string
	// Method is how the numbers were taken, one bullet each.
	Method []string
}

// NotesMarker starts the part of BENCHMARKS.md that is written by hand and
// kept when the report is regenerated.
const NotesMarker = "<!-- Everything below this line is written by hand and kept when the report is regenerated. -->"

// formatNum prints v with three significant digits at most, grouping
// thousands.
func formatNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case math.Abs(v) >= 100:
		return group(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// group inserts thousands separators into an integer string.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatRatio truncates rather than rounds, so that a ratio just short of
// a target (2.996 for "≥ 3×") does not print as if it met it.
func formatRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	// The epsilon keeps 1.59, which is 158.999… hundredths in binary,
	// from printing as 1.58.
	const eps = 1e-9
	if v >= 10 {
		return strconv.FormatFloat(math.Floor(v+eps), 'f', 0, 64) + "×"
	}
	if v < 0.1 {
		// Far from any target: two significant digits, not 0.00.
		return strconv.FormatFloat(v, 'g', 2, 64) + "×"
	}
	return strconv.FormatFloat(math.Floor(v*100+eps)/100, 'f', 2, 64) + "×"
}

func withUnit(v float64, unit string) string {
	if unit == "" {
		return formatNum(v)
	}
	return formatNum(v) + " " + unit
}

func result(t *Target) string {
	switch {
	case t == nil:
		return ""
	case t.Met:
		return "met"
	default:
		return "**missed**"
	}
}

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("berth against the CNCF distribution registry (v3.1.2), side by side on one machine in one run. ")
	w("This file is written by `make bench` (`go run ./cmd/berth-bench`); the tables below are its latest output. ")
	if r.Reps == 1 {
		w("Each figure is from one run per server (berth, then distribution); ")
	} else {
		w("Each figure is the median of %d runs per server, alternating between the two servers (berth, distribution, berth, …); ", r.Reps)
	}
	w("ratios are berth/distribution, so above 1× means berth is higher. ")
	w("Where a row compares berth with something else (crane, skopeo, the upstream registry, berth's own hosted content), the distribution column names it and the ratio is berth/that.\n\n")
	if r.Quick {
		w("> **Smoke run** (`-quick`): sizes and counts are shrunk, so these numbers are not comparable with the targets' workloads.\n\n")
	}

	w("## Machine\n\n| | |\n|---|---|\n")
	w("| CPU | %s, %d cores |\n", cell(r.Machine.CPU), r.Machine.Cores)
	w("| Memory | %.1f GiB |\n", r.Machine.MemoryGiB)
	w("| Kernel | %s |\n", cell(r.Machine.Kernel))
	w("| Go | %s |\n", r.Machine.GoVersion)
	w("| Filesystem of the data directories | %s |\n", cell(r.Machine.Filesystem))
	w("| Load average at the start | %s |\n", r.Machine.LoadAvg)
	w("| Run | %s, took %s |\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Duration.Round(time.Second))

	l := r.Limits
	bound := l.UploadBound()
	w("## Machine limits, measured in the same run\n\n| limit | MiB/s |\n|---|---:|\n")
	w("| SHA-256 (crypto/sha256), one core, in memory (best of 5) | %s |\n", formatNum(l.SHA256))
	w("| Disk sequential write of %s, into the page cache | %s |\n", sizeName(l.DiskBytes), formatNum(l.DiskBuffered))
	w("| Disk sequential write of %s, with fsync | %s |\n", sizeName(l.DiskBytes), formatNum(l.DiskDurable))
	w("| **Upload bound**: min(SHA-256, disk with fsync) | %s |\n", formatNum(bound))
	if r.BerthPush > 0 {
		w("| berth, %s monolithic push | %s (%.0f %% of the bound) |\n", r.pushSize(), formatNum(r.BerthPush), 100*r.BerthPush/bound)
	}
	if r.DistPush > 0 {
		w("| distribution, %s monolithic push | %s (%.0f %% of the bound) |\n", r.pushSize(), formatNum(r.DistPush), 100*r.DistPush/bound)
	}
	w("\nBoth servers fsync a blob before they acknowledge it, so the fraction is taken against the disk rate with fsync.\n\n")

	w("## Targets\n\n| target | berth | compared with | ratio | result |\n|---|---:|---:|---:|---|\n")
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if t := row.CeilingTarget; t != nil {
				w("| %s | %s | ceiling: %s | %s | %s |\n", cell(t.Text), withUnit(row.Berth, row.Unit), withUnit(row.Ceiling, row.Unit),
					formatRatio(row.Fraction()), result(t))
			}
			if row.Target == nil {
				continue
			}
			w("| %s | %s | %s | %s | %s |\n", cell(row.Target.Text), withUnit(row.Berth, row.Unit), cell(row.peerCell()),
				formatRatio(row.Ratio()), result(row.Target))
		}
	}
	w("\n## Workloads\n")
	for _, s := range r.Sections {
		w("\n### %s\n\n", s.Name)
		if s.About != "" {
			w("%s\n\n", s.About)
		}
		withCeiling := false
		for _, row := range s.Rows {
			withCeiling = withCeiling || row.Ceiling != 0
		}
		if withCeiling {
			w("| metric | berth | distribution | berth/distribution | ceiling | berth/ceiling | target |\n|---|---:|---:|---:|---:|---:|---|\n")
		} else {
			w("| metric | berth | distribution | berth/distribution | target |\n|---|---:|---:|---:|---|\n")
		}
		for _, row := range s.Rows {
			metric := row.Metric
			if row.LowerIsBetter {
				metric += " (lower is better)"
			}
			var ts []string
			for _, t := range []*Target{row.CeilingTarget, row.Target} {
				if t != nil {
					ts = append(ts, t.Text+": "+result(t))
				}
			}
			t := strings.Join(ts, "; ")
			if withCeiling {
				c, f := row.ceilingCells()
				w("| %s | %s | %s | %s | %s | %s | %s |\n", cell(metric), withUnit(row.Berth, row.Unit), cell(row.peerCell()),
					formatRatio(row.Ratio()), c, f, cell(t))
				continue
			}
			w("| %s | %s | %s | %s | %s |\n", cell(metric), withUnit(row.Berth, row.Unit), cell(row.peerCell()),
				formatRatio(row.Ratio()), cell(t))
		}
	}
	if len(r.NotRun) > 0 {
		w("\n## Not run\n\n")
		for _, n := range r.NotRun {
			w("- %s\n", n)
		}
	}
	if len(r.Method) > 0 {
		w("\n## How it is measured\n\n")
		for _, m := range r.Method {
			w("- %s\n", m)
		}
	}
	return b.String()
}

func (r *Report) pushSize() string { return sizeName(r.PushBytes) }

// sizeName prints a byte count in the largest binary unit that divides it.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// WriteReport writes md to path, keeping what follows NotesMarker in the
// file it replaces.
func WriteReport(path, md string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out := strings.TrimRight(md, "\n") + "\n"
	if i := bytes.Index(old, []byte(NotesMarker)); i >= 0 {
		out += "\n" + string(old[i:])
	} else {
		out += "\n" + NotesMarker + "\n"
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
