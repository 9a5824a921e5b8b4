package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what a wrk run reports.
type WrkResult struct {
	Requests  int64
	ReqPerSec float64
	// Latency percentiles from wrk's --latency distribution.
	P50, P75, P90, P99 time.Duration
	// Non2xx counts responses with a status of 400 or more (wrk's
	// "Non-2xx or 3xx responses"); SocketErrors adds up its socket errors.
	Non2xx       int64
	SocketErrors int64
}

// WrkOptions describe one wrk run.
type WrkOptions struct {
	URL         string
	Method      string // "" is GET
	Header      map[string]string
	Threads     int
	Connections int
	Duration    time.Duration
	// ScriptDir is where a Lua script for a non-GET method is written.
	ScriptDir string
}

// args returns wrk's command line (without the program name) and the Lua
// script it needs, if any.
func (o WrkOptions) args() (args []string, script string) {
	args = []string{
		"--latency",
		"-t", strconv.Itoa(max(1, o.Threads)),
		"-c", strconv.Itoa(max(1, o.Connections)),
		"-d", strconv.Itoa(max(1, int(o.Duration.Round(time.Second)/time.Second))) + "s",
		"--timeout", "10s",
	}
	keys := make([]string, 0, len(o.Header))
	for k := range o.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-H", k+": "+o.Header[k])
	}
	if o.Method != "" && o.Method != "GET" {
		script = fmt.Sprintf("wrk.method = %q\n", o.Method)
	}
	return args, script
}

// RunWrk runs wrk and parses its report. A run with errors (non-2xx/3xx
// responses or socket errors) is returned with an error, because its rates
// would not describe successful requests.
func RunWrk(ctx context.Context, wrk string, o WrkOptions) (WrkResult, error) {
	args, script := o.args()
	if script != "" {
		f, err := os.CreateTemp(o.ScriptDir, "wrk-*.lua")
		if err != nil {
			return WrkResult{}, err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(script); err != nil {
			f.Close()
			return WrkResult{}, err
		}
		if err := f.Close(); err != nil {
			return WrkResult{}, err
		}
		args = append(args, "-s", filepath.Clean(f.Name()))
	}
	args = append(args, o.URL)
	cmd := exec.CommandContext(ctx, wrk, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	res, err := ParseWrk(string(out))
	if err != nil {
		return res, fmt.Errorf("wrk %s: %w\n%s", o.URL, err, out)
	}
	if res.Non2xx > 0 || res.SocketErrors > 0 {
		return res, fmt.Errorf("wrk %s: %d error responses, %d socket errors\n%s", o.URL, res.Non2xx, res.SocketErrors, out)
	}
	return res, nil
}

// ParseWrk reads the report wrk prints with --latency.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRate, haveP50, haveP99, haveCount bool
	sc := bufio.NewScanner(strings.NewReader(out))
	inDist := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Latency Distribution"):
			inDist = true
			continue
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("latency %s: %w", f[0], err)
			}
			switch f[0] {
			case "50%":
				r.P50, haveP50 = d, true
			case "75%":
				r.P75 = d
			case "90%":
				r.P90 = d
			case "99%":
				r.P99, haveP99 = d, true
			}
			continue
		}
		inDist = false
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("Requests/sec: %w", err)
			}
			r.ReqPerSec, haveRate = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("request count: %w", err)
			}
			r.Requests, haveCount = v, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			v, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("non-2xx count: %w", err)
			}
			r.Non2xx = v
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("socket errors: %w", err)
				}
				r.SocketErrors += v
			}
		}
	}
	if !haveRate || !haveCount {
		return r, fmt.Errorf("no request rate in wrk output")
	}
	if !haveP50 || !haveP99 {
		return r, fmt.Errorf("no latency distribution in wrk output (was --latency given?)")
	}
	return r, nil
}

// parseWrkDuration reads wrk's time format: a number and a unit of us, ms,
// s, m or h.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("bad duration %q", s)
}
