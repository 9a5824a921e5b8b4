package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// RunHeadLoad sends HEAD requests for path on conns keep-alive connections
// to addr for d, each connection sending its next request when the last
// answer's headers have arrived, and reports the rate and latency
// percentiles. It exists because wrk cannot measure HEAD: it waits for the
// body that the Content-Length of a HEAD answer announces but never comes.
// Like wrk, it writes pre-built request bytes and parses no more of the
// answer than it must, so that it takes little CPU from the server.
func RunHeadLoad(ctx context.Context, addr, path string, header map[string]string, conns int, d time.Duration) (WrkResult, error) {
	var req bytes.Buffer
	fmt.Fprintf(&req, "HEAD %s HTTP/1.1\r\nHost: %s\r\n", path, addr)
	keys := make([]string, 0, len(header))
	for k := range header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&req, "%s: %s\r\n", k, header[k])
	}
	req.WriteString("\r\n")
	raw := req.Bytes()

	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lat := make([][]time.Duration, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i], errs[i] = headLoop(ctx, addr, raw)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []float64
	for i := range conns {
		if errs[i] != nil {
			return WrkResult{}, errs[i]
		}
		all = append(all, DurationsMs(lat[i])...)
	}
	if len(all) == 0 {
		return WrkResult{}, fmt.Errorf("HEAD %s: no request completed", path)
	}
	fromMs := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return WrkResult{
		Requests:  int64(len(all)),
		ReqPerSec: float64(len(all)) / elapsed.Seconds(),
		P50:       fromMs(Percentile(all, 50)),
		P75:       fromMs(Percentile(all, 75)),
		P90:       fromMs(Percentile(all, 90)),
		P99:       fromMs(Percentile(all, 99)),
	}, nil
}

// headLoop sends HEAD requests on one connection until ctx ends and returns
// the latency of each one that completed.
func headLoop(ctx context.Context, addr string, raw []byte) ([]time.Duration, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReaderSize(conn, 16<<10)
	var lat []time.Duration
	for ctx.Err() == nil {
		t := time.Now()
		if _, err := conn.Write(raw); err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, err
		}
		status, err := readHeadResponse(br)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, err
		}
		if status != 200 {
			return nil, fmt.Errorf("HEAD: status %d", status)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// readHeadResponse reads one answer to a HEAD request: the status line and
// the headers, up to the empty line. It returns the status code.
func readHeadResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// HTTP/1.1 200 OK
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	var status int
	if _, err := fmt.Sscanf(f[1], "%d", &status); err != nil {
		return 0, fmt.Errorf("malformed status line %q", line)
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 && (string(line) == "\r\n" || string(line) == "\n") {
			return status, nil
		}
	}
}
