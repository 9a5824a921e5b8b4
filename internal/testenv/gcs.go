package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// GCS is an empty bucket on a fake-gcs-server, an emulator of Google Cloud
// Storage's JSON and XML APIs.
type GCS struct {
	// Endpoint is the server's URL, "http://127.0.0.1:PORT". The JSON API
	// is below /storage/v1/; requests need no credentials.
	Endpoint string
	Bucket   string
}

// gcsProject is the project buckets are created in; the emulator ignores it.
const gcsProject = "berth-test"

// StartGCS returns a new, empty bucket on a fake-gcs-server. The bucket
// and everything in it are removed when tb ends.
//
// The first call starts a server private to the test binary: the
// fake-gcs-server binary found on PATH, else in $PEERS_BIN or
// ~/.cache/registry-peers/bin (where ../shared/tools/install-peers.sh
// fake-gcs-server puts it), keeping objects in a temporary directory.
// Later calls share it and get a bucket each. Without the binary the test
// is skipped, except in CI (CI=true), where it fails.
func StartGCS(tb testing.TB) GCS {
	tb.Helper()
	srv, err := sharedGCS()
	emulatorOrSkip(tb, "fake-gcs-server", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := fmt.Sprintf("test-%d", srv.nextBucket.Add(1))
	if err := srv.client.Bucket(bucket).Create(ctx, gcsProject, nil); err != nil {
		tb.Fatalf("create bucket %s: %v", bucket, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.removeBucket(ctx, bucket); err != nil {
			tb.Errorf("remove bucket %s: %v", bucket, err)
		}
	})
	return GCS{Endpoint: srv.endpoint, Bucket: bucket}
}

type gcsServer struct {
	*emulator
	endpoint   string
	client     *storage.Client
	nextBucket atomic.Int64
}

var sharedGCS = sync.OnceValues(startGCS)

func startGCS() (*gcsServer, error) {
	bin, err := findTool("fake-gcs-server", "bash ../shared/tools/install-peers.sh fake-gcs-server", peersDir("PEERS_BIN", "bin")...)
	if err != nil {
		return nil, err
	}
	e, err := startEmulator(emulatorSpec{
		name: "fake-gcs-server",
		command: func(dir string, port int) []string {
			addr := "127.0.0.1:" + strconv.Itoa(port)
			return []string{bin, "-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port),
				"-backend", "filesystem", "-filesystem-root", dir + "/data",
				"-public-host", addr, "-external-url", "http://" + addr, "-log-level", "warn"}
		},
		ready: httpReady("/storage/v1/b?project="+gcsProject, http.StatusOK),
	})
	if err != nil {
		return nil, err
	}
	endpoint := "http://" + e.addr
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		e.control.Close()
		return nil, err
	}
	return &gcsServer{emulator: e, endpoint: endpoint, client: client}, nil
}

// removeBucket deletes every object of bucket, then the bucket.
func (srv *gcsServer) removeBucket(ctx context.Context, bucket string) error {
	b := srv.client.Bucket(bucket)
	it := b.Objects(ctx, nil)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return err
		}
		if err := b.Object(attrs.Name).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return err
		}
	}
	return b.Delete(ctx)
}
