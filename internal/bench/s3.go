package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"
)

const (
	minioUser     = "berthbench"
	minioPassword = "berthbench-secret"
	minioRegion   = "us-east-1"
)

// minio is a MinIO server started by the harness.
type minio struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan error
}

// startMinIO starts bin serving dir/data on a free loopback port and waits
// until it is live.
func startMinIO(ctx context.Context, bin, dir string) (*minio, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", addr, "--console-address", console)
	cmd.Env = append(cleanEnv("MINIO_"), "HOME="+dir, "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start minio: %w", err)
	}
	m := &minio{Endpoint: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { m.done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(m.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case err := <-m.done:
			return nil, fmt.Errorf("minio exited at start: %v (log: %s)", err, lf.Name())
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("minio not live within a minute (log: %s)", lf.Name())
		}
	}
}

// Stop stops the server.
func (m *minio) Stop() {
	if m == nil || m.cmd == nil {
		return
	}
	stopProcess(m.cmd.Process, m.done, syscall.SIGTERM, 10*time.Second)
	m.cmd = nil
}

// CreateBucket creates bucket, waiting while the server initialises.
func (m *minio) CreateBucket(ctx context.Context, bucket string) error {
	empty := sha256.Sum256(nil)
	payload := hex.EncodeToString(empty[:])
	creds := aws.Credentials{AccessKeyID: minioUser, SecretAccessKey: minioPassword}
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.Endpoint+"/"+bucket, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Amz-Content-Sha256", payload)
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, payload, "s3", minioRegion, time.Now()); err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return fmt.Errorf("create bucket %s: %s: %s", bucket, resp.Status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// berthS3Config is berth's configuration on bucket of MinIO at endpoint.
func berthS3Config(endpoint, bucket string) string {
	return fmt.Sprintf("storage:\n  driver: s3\n  s3:\n    endpoint: %s\n    region: %s\n    bucket: %s\n    accessKey: %s\n    secretKey: %s\n    pathStyle: true\n",
		endpoint, minioRegion, bucket, minioUser, minioPassword)
}

// distributionS3Storage is distribution's storage section on bucket of
// MinIO at endpoint, serving blobs itself (no redirects, as berth by
// default).
func distributionS3Storage(endpoint, bucket string) string {
	return fmt.Sprintf("  s3:\n    accesskey: %s\n    secretkey: %s\n    region: %s\n    regionendpoint: %s\n    bucket: %s\n    forcepathstyle: true\n    secure: false\n  redirect:\n    disable: true\n",
		minioUser, minioPassword, minioRegion, endpoint, bucket)
}

// deleteBlob deletes blob d of repo through the API (best effort: it only
// bounds the space used).
func deleteBlob(ctx context.Context, c *Client, repo string, d digest.Digest) {
	resp, err := c.do(ctx, http.MethodDelete, c.base+"/v2/"+repo+"/blobs/"+d.String(), nil, 0, nil, http.StatusAccepted)
	if err == nil {
		drain(resp)
	}
}

// s3Workload pushes and pulls one large blob with berth and distribution
// each on its own bucket of one MinIO server.
func (r *runner) s3Workload(ctx context.Context, rep *Report) error {
	berth, err := r.berthBinary(ctx)
	if err != nil {
		return err
	}
	bin, err := sharedTool(ctx, r.log, "install-peers.sh", "minio", "minio", "")
	if err != nil {
		return notRun{what: "blob push and GET on MinIO", why: err.Error()}
	}
	mdir := filepath.Join(r.dir, "s3-minio")
	m, err := startMinIO(ctx, bin, mdir)
	if err != nil {
		return err
	}
	defer m.Stop()
	for _, b := range []string{"berth", "distribution", "ceiling"} {
		if err := m.CreateBucket(ctx, b); err != nil {
			return err
		}
	}
	r.stopPair()
	b := newConfiguredBerth(berth, filepath.Join(r.dir, "s3-berth"), "berth", berthS3Config(m.Endpoint, "berth"))
	d := newConfiguredDistribution(r.tools.Distribution, filepath.Join(r.dir, "s3-distribution"), "distribution", distributionS3Storage(m.Endpoint, "distribution"), "")
	b.label, d.label = "s3", "s3"
	r.servers = []*Server{b, d}
	if err := r.startServers(ctx, b, d); err != nil {
		r.servers = nil
		return err
	}
	r.clients = []*Client{NewClient(b.URL(), 128), NewClient(d.URL(), 128)}
	defer func() {
		r.stopPair()
		m.Stop()
		if !r.cfg.Keep {
			for _, p := range []string{"s3-minio", "s3-berth", "s3-distribution"} {
				_ = removeAll(filepath.Join(r.dir, p), 4)
			}
		}
	}()

	size := r.sz.S3Blob
	name := sizeName(size) + " blob on MinIO"
	r.logf("%s: generating content", name)
	data := make([]byte, size)
	fillRandom(data, r.salt+11)
	bl := newBlob(data, r.salt+11)
	const repo = "bench/s3"
	var push, pushRSS, get, getRSS measurement
	var last [2]digest.Digest
	r.logf("%s: monolithic push", name)
	err = r.alternate(ctx, "s3 monolithic push", false, &pushRSS, func(i int, s *Server, c *Client) error {
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
		if i == 1 {
			// The S3 ceiling takes its turn after the two servers.
			syncAll()
			rate, err := m.s3Ceiling(ctx, "ceiling", "blob", data, 32<<20)
			if err != nil {
				return fmt.Errorf("S3 ceiling: %w", err)
			}
			push.add(ceilingIndex, rate)
			r.logf("  %-12s %7.1f MiB/s", "ceiling", rate)
		}
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
	err = r.alternate(ctx, "s3 GET", false, &getRSS, func(i int, s *Server, c *Client) error {
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
	rep.Sections = append(rep.Sections, Section{
		Name:  name,
		About: fmt.Sprintf("berth (`storage.driver: s3`, `pathStyle: true`, default 32 MiB parts) and distribution (its s3 driver: `regionendpoint`, `forcepathstyle`, `secure: false`, region us-east-1, `redirect.disable: true` so that it serves blobs itself as berth does by default) store in separate buckets of one MinIO server (single drive, on the same disk, from install-peers.sh). One client pushes a %s blob as a monolithic upload and GETs it (warm, discarding the body), taking turns; the ceiling is the same bytes written to a third bucket of the same MinIO directly with the AWS SDK, as one multipart upload of 32 MiB parts sent one after the other.", sizeName(size)),
		Rows: []Row{
			s3PushRow(&push, size),
			{Metric: "GET", Unit: "MiB/s", Berth: get.median(0), Dist: get.median(1)},
			{Metric: "peak RSS, monolithic push", Unit: "MiB", Berth: pushRSS.max(0), Dist: pushRSS.max(1), LowerIsBetter: true},
			{Metric: "peak RSS, GET", Unit: "MiB", Berth: getRSS.max(0), Dist: getRSS.max(1), LowerIsBetter: true},
		},
	})
	return nil
}

// s3PushRow is the monolithic push on MinIO, with the S3 ceiling.
func s3PushRow(push *measurement, size int64) Row {
	row := Row{Metric: "monolithic push", Unit: "MiB/s", Berth: push.median(0), Dist: push.median(1), Ceiling: push.median(ceilingIndex)}
	if row.Ceiling > 0 {
		row.CeilingTarget = &Target{Text: sizeName(size) + " push on MinIO ≥ 0.9 of the S3 ceiling (the SDK's multipart upload to the same MinIO)", Met: row.Fraction() >= 0.9}
	}
	return row
}

// s3Ceiling is the S3 ceiling: the same bytes written to the same MinIO
// directly with the SDK, as one multipart upload of parts of berth's
// default size (32 MiB) sent one after the other, as berth's driver does
// from one request's stream. It returns the rate in MiB/s.
func (m *minio) s3Ceiling(ctx context.Context, bucket, key string, data []byte, partSize int) (float64, error) {
	client := s3.New(s3.Options{
		Region:       minioRegion,
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(minioUser, minioPassword, ""),
	})
	start := time.Now()
	up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return 0, err
	}
	var parts []types.CompletedPart
	for off, n := 0, int32(1); off < len(data); off, n = off+partSize, n+1 {
		end := min(off+partSize, len(data))
		out, err := client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(data[off:end]), ContentLength: aws.Int64(int64(end - off))})
		if err != nil {
			return 0, err
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
	}
	if _, err := client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		return 0, err
	}
	rate := Rate(int64(len(data)), time.Since(start))
	_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
	return rate, nil
}
