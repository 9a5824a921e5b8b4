package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berthhq/berth/internal/testenv"
)

// replicaPartSize is the S3 multipart part size the replicas run with: the smallest S3
// allows, so that uploads of a few MiB already span parts and resume across processes in the
// middle of a multipart upload.
const replicaPartSize = 5 << 20

// sharedBackend is what berth replicas share: one bucket on MinIO (addressed path-style) and
// one PostgreSQL database.
type sharedBackend struct {
	S3  testenv.MinIO
	DSN string
}

// newSharedBackend creates an empty bucket and an empty database for the test. Without MinIO
// or PostgreSQL the test skips, or fails in CI (testenv decides).
func newSharedBackend(t testing.TB) sharedBackend {
	t.Helper()
	return sharedBackend{S3: testenv.StartMinIO(t), DSN: testenv.StartPostgres(t)}
}

// configFile writes a berth configuration file that puts blobs in the bucket and metadata in
// the database, and returns its path. Every replica reads the same file.
func (b sharedBackend) configFile(t testing.TB) string {
	t.Helper()
	q := strconv.Quote // YAML double-quoted scalars accept Go's escapes for these ASCII values
	cfg := fmt.Sprintf(`storage:
  driver: s3
  s3:
    endpoint: %s
    region: %s
    bucket: %s
    accessKey: %s
    secretKey: %s
    pathStyle: true
    partSize: %d
metadata:
  driver: postgres
  dsn: %s
`, q(b.S3.Endpoint), q(b.S3.Region), q(b.S3.Bucket), q(b.S3.AccessKey), q(b.S3.SecretKey),
		replicaPartSize, q(b.DSN))
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// s3Client returns a client of the bucket, to look at what replicas left in it.
func (b sharedBackend) s3Client(t testing.TB) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(b.S3.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(b.S3.AccessKey, b.S3.SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(b.S3.Endpoint)
		o.UsePathStyle = true
	})
}

// uploadedParts returns how many parts the S3 multipart uploads of the object key hold: the
// parts a writer sent, whether or not it recorded them.
func (b sharedBackend) uploadedParts(t testing.TB, c *s3.Client, key string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &b.S3.Bucket, Prefix: &key})
	if err != nil {
		t.Fatalf("list multipart uploads of %s: %v", key, err)
	}
	n := 0
	for _, u := range ups.Uploads {
		if aws.ToString(u.Key) != key {
			continue
		}
		parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: &b.S3.Bucket, Key: u.Key, UploadId: u.UploadId})
		if err != nil {
			t.Fatalf("list parts of %s: %v", key, err)
		}
		n += len(parts.Parts)
	}
	return n
}

// startReplicas starts n berth processes, each on its own loopback port and data directory,
// all configured by cfg, one after the other (the first migrates the database).
func startReplicas(t testing.TB, n int, cfg string) ([]*server, []*regClient) {
	t.Helper()
	srvs := make([]*server, n)
	regs := make([]*regClient, n)
	for i := range srvs {
		srvs[i] = startBerth(t, "--config", cfg)
		regs[i] = newClient(t, srvs[i])
	}
	return srvs, regs
}

// gatedProxy forwards every request to one replica, like a load balancer would, and holds
// the body of blob uploads once a body has passed `after` bytes, until it is opened. Held
// marks the moment a push is known to be in the middle of a blob: the replica has received
// part of the body and waits for the rest.
type gatedProxy struct {
	Addr  string
	after int64
	srv   *httptest.Server

	held      chan struct{} // closed when the first body is held
	release   chan struct{} // closed by open
	heldOnce  sync.Once
	closeOnce sync.Once
}

func startGatedProxy(t testing.TB, target *server, after int64) *gatedProxy {
	t.Helper()
	u, err := url.Parse(target.URL())
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedProxy{after: after, held: make(chan struct{}), release: make(chan struct{})}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: &http.Transport{Proxy: nil},
		// A replica killed on purpose is not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPatch || r.Method == http.MethodPut) &&
			strings.Contains(r.URL.Path, "/blobs/uploads/") && r.Body != nil {
			r.Body = &gatedBody{ReadCloser: r.Body, g: g}
		}
		rp.ServeHTTP(w, r)
	}))
	// Open before closing: Close waits for the requests in flight, which may be held.
	t.Cleanup(func() { g.open(); g.srv.Close() })
	g.Addr = strings.TrimPrefix(g.srv.URL, "http://")
	return g
}

// open lets held bodies go on.
func (g *gatedProxy) open() { g.closeOnce.Do(func() { close(g.release) }) }

// gatedBody passes the first `after` bytes of a body, then waits for the gate to open.
type gatedBody struct {
	io.ReadCloser
	g *gatedProxy
	n int64
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.n >= b.g.after {
		// Everything read so far has been handed to the proxy's transport, which writes it
		// to the replica before it reads again.
		b.g.heldOnce.Do(func() { close(b.g.held) })
		<-b.g.release
	} else if rest := b.g.after - b.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
