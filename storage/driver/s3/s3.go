// Package s3 is a storage driver for S3 and S3-compatible object stores
// (AWS S3, MinIO, Ceph RGW, Cloudflare R2 and others), built on the AWS SDK
// for Go v2.
//
// # Layout
//
// A driver path "/a/b" is the object key ROOT + "a/b", where ROOT is the
// configured root directory followed by a slash (or empty: the bucket's
// top level). Directories are implied by keys, as the driver contract asks:
// a directory exists while some object lies below it.
//
// Writers that are closed without Commit keep their state below
// ROOT + "~pending/", which no valid driver path can name ("~" is not
// allowed in a path component), so it never shows in List, Walk or Stat:
//
//	ROOT + "a/b"              the committed file
//	ROOT + "~pending/a/b"     a writer's state for "/a/b": the bytes not yet
//	                          in a full part, with the multipart upload id,
//	                          the number of parts and the part size in its
//	                          metadata
//
// # Writers
//
// A FileWriter buffers one part (Options.PartSize) in memory and uploads
// every full part to a multipart upload of the file's own key, so parts are
// all the same size and Commit (CompleteMultipartUpload, or a single
// PutObject for a file smaller than a part) replaces the file atomically.
// Close writes the pending object; a Writer(path, true) in any process
// reads it, checks the upload's parts with ListParts and carries on. State
// reaches the store only at Close (and when an upload is first created, so
// that a later Delete can find and abort it), so content written after the
// last Close by a process that died is lost; what Close kept is never mixed
// with it. Writer(path, false) discards any earlier pending state at once.
//
// Until Commit, readers see the previously committed file, if any: Stat,
// Reader and GetContent know nothing of content in progress, whose size
// only the FileWriter tells.
//
// The pending object records which committed file it was started from (its
// ETag and modification time). If the file is replaced or removed by other
// means (PutContent, Move, Delete) the pending state is stale and a later
// Writer(path, true) discards it. Delete also aborts the multipart uploads
// and removes the pending objects below the path it deletes. A multipart
// upload whose process died between creating it and recording it is left
// to the bucket's lifecycle rules (AbortIncompleteMultipartUpload).
//
// Object stores allow a key to be a file and a directory prefix at once, so
// unlike the filesystem driver this one does not refuse to create a file
// below a file or where a directory is: checking would cost requests on
// every write, and berth's own layout never does it.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/berthhq/berth/storage/driver/internal/bulk"
	"github.com/berthhq/berth/storage/driver/internal/parts"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berthhq/berth/storage/driver"
)

const (
	driverName = "s3"

	// MinPartSize and MaxPartSize are S3's limits on the size of a part
	// (except the last) of a multipart upload.
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	// MaxParts is S3's limit on the number of parts of one upload. With
	// the default part size a file may hold 320 GiB.
	MaxParts = 10_000

	// DefaultPartSize is the part size when Options.PartSize is zero.
	DefaultPartSize = 32 << 20
	// DefaultRedirectExpiry is how long a presigned URL stays valid when
	// Options.RedirectExpiry is zero.
	DefaultRedirectExpiry = 20 * time.Minute
	// DefaultMaxAttempts and DefaultMaxBackoff bound retries when the
	// corresponding options are zero.
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 20 * time.Second

	// maxCopyObjectSize is the largest object CopyObject may copy; a
	// larger one is copied part by part with UploadPartCopy.
	maxCopyObjectSize = 5 << 30
	// minCopyPartSize is the part size for copying large objects: few
	// big requests, each done by the server.
	minCopyPartSize = 1 << 30
	// copyConcurrency bounds the UploadPartCopy requests in flight.
	copyConcurrency = 4

	// pendingDir is the key component below the root that holds writer
	// state. "~" cannot appear in a driver path.
	pendingDir = "~pending/"
)

// Options configure a Driver. Bucket is required; everything else has a
// default.
type Options struct {
	// Endpoint is the URL of an S3-compatible service, such as
	// "http://127.0.0.1:9000" for MinIO. Empty means AWS S3, found from
	// the region.
	Endpoint string
	// Region of the bucket. Empty means the region of the AWS
	// configuration (AWS_REGION, the shared config file), else
	// "us-east-1", which most S3-compatible services accept.
	Region string
	// Bucket holds the files. It must exist.
	Bucket string
	// RootDirectory is a key prefix inside the bucket under which all
	// files live, e.g. "registry" or "berth/prod"; empty means the
	// bucket's top level. It is made of valid path components.
	RootDirectory string
	// AccessKey and SecretKey are static credentials. When both are empty
	// the AWS default credential chain is used (environment, shared
	// files, web identity, container and instance roles).
	AccessKey string
	SecretKey string
	// SessionToken goes with temporary static credentials.
	SessionToken string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY; MinIO and most self-hosted services need it.
	PathStyle bool
	// PartSize is the size of multipart upload parts, between MinPartSize
	// and MaxPartSize; zero means DefaultPartSize. Each open FileWriter
	// buffers up to one part in memory, and a file holds at most MaxParts
	// parts. A writer resuming an upload keeps the part size the upload
	// was started with.
	PartSize int64
	// Redirect makes the driver a driver.Redirector: blob GETs are
	// answered with a redirect to a presigned URL of the object, so
	// clients download straight from the store. Off by default.
	Redirect bool
	// RedirectExpiry is how long presigned URLs stay valid; zero means
	// DefaultRedirectExpiry.
	RedirectExpiry time.Duration
	// InsecureSkipVerify disables TLS certificate verification of the
	// endpoint. For tests only.
	InsecureSkipVerify bool
	// MaxAttempts bounds the attempts of one request, the first included;
	// zero means DefaultMaxAttempts. Throttling (SlowDown, HTTP 503 and
	// 429), server errors and network errors are retried with
	// exponential backoff and jitter.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts; zero means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Driver stores files as objects in one bucket. It implements
// driver.Driver and, with Options.Redirect, driver.Redirector. It keeps no
// state besides its configuration, so any number of Drivers, in one process
// or several, may share a bucket and root.
type Driver struct {
	client   *s3.Client
	presign  *s3.PresignClient
	bucket   string
	root     string // "" or ends with "/"
	partSize int64
	redirect bool
	expiry   time.Duration

	// copyThreshold and copyPartSize decide how Move copies: objects up
	// to copyThreshold with one CopyObject, larger ones in parts. Tests
	// lower them to exercise the multipart copy with small objects.
	copyThreshold int64
	copyPartSize  int64

	// bufs recycles part buffers of partSize between writers.
	bufs parts.Pool
}

var _ driver.Driver = (*Driver)(nil)

// New returns a Driver for the bucket described by opts. It checks that
// the bucket exists and that the credentials may use it, so that a wrong
// configuration fails at start rather than on the first push.
func New(ctx context.Context, opts Options) (*Driver, error) {
	d, err := newDriver(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := d.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &d.bucket}); err != nil {
		return nil, fmt.Errorf("%s: bucket %q: %w", driverName, d.bucket, err)
	}
	return d, nil
}

// newDriver validates opts and builds the client, without any request.
func newDriver(ctx context.Context, opts Options) (*Driver, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	root := strings.Trim(opts.RootDirectory, "/")
	if root != "" {
		root += "/"
	}
	partSize := opts.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	expiry := opts.RedirectExpiry
	if expiry == 0 {
		expiry = DefaultRedirectExpiry
	}
	maxAttempts := opts.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = DefaultMaxBackoff
	}

	httpClient := awshttp.NewBuildableClient()
	if opts.InsecureSkipVerify {
		httpClient = httpClient.WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true
		})
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer { return newRetryer(maxAttempts, maxBackoff) }),
		// Only the checksums S3 requires: several S3-compatible
		// services reject the newer optional ones. SigV4 still signs
		// the payload's SHA-256 over plain HTTP, and TLS protects it
		// otherwise.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("%s: load AWS configuration: %w", driverName, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	return &Driver{
		client:        client,
		presign:       s3.NewPresignClient(client, s3.WithPresignExpires(expiry)),
		bucket:        opts.Bucket,
		root:          root,
		partSize:      partSize,
		bufs:          parts.Pool{Size: partSize},
		redirect:      opts.Redirect,
		expiry:        expiry,
		copyThreshold: maxCopyObjectSize,
		copyPartSize:  minCopyPartSize,
	}, nil
}

// Validate checks the options without contacting the store; New does too.
// It reports every problem at once.
func (o *Options) Validate() error {
	var problems []string
	if o.Bucket == "" {
		problems = append(problems, "bucket is required")
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("endpoint %q is not an http or https URL", o.Endpoint))
		}
	}
	if root := strings.Trim(o.RootDirectory, "/"); root != "" && !driver.ValidPath("/"+root) {
		problems = append(problems, fmt.Sprintf("root directory %q: components must match [A-Za-z0-9._-]+", o.RootDirectory))
	}
	if (o.AccessKey == "") != (o.SecretKey == "") {
		problems = append(problems, "access key and secret key go together")
	}
	if o.PartSize != 0 && (o.PartSize < MinPartSize || o.PartSize > MaxPartSize) {
		problems = append(problems, fmt.Sprintf("part size %d is outside [%d, %d]", o.PartSize, MinPartSize, MaxPartSize))
	}
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"redirect expiry", o.RedirectExpiry < 0 || o.RedirectExpiry > 7*24*time.Hour},
		{"max attempts", o.MaxAttempts < 0},
		{"max backoff", o.MaxBackoff < 0},
	} {
		if v.bad {
			problems = append(problems, v.name+" is out of range")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// newRetryer retries throttling, server and network errors with
// exponential backoff and full jitter. The SDK's client-side retry quota is
// off: under sustained throttling it would fail requests outright instead
// of backing off, and attempts are bounded anyway.
func newRetryer(maxAttempts int, maxBackoff time.Duration) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		// SlowDown and 503/429 are in the SDK's defaults already;
		// listing them makes the policy explicit and covers services
		// that answer throttling with other error codes.
		o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if isThrottle(err) {
				return aws.TrueTernary
			}
			return aws.UnknownTernary
		}))
		o.Throttles = append(o.Throttles, retry.IsErrorThrottleFunc(func(err error) aws.Ternary {
			if isThrottle(err) {
				return aws.TrueTernary
			}
			return aws.UnknownTernary
		}))
	})
}

func isThrottle(err error) bool {
	switch httpStatus(err) {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return true
	}
	return errorCode(err) == "SlowDown"
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return driverName }

// key maps a valid path to its object key.
func (d *Driver) key(p string) string { return d.root + p[1:] }

// dirPrefix is the key prefix of everything below directory p.
func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.root
	}
	return d.key(p) + "/"
}

// pendingKey is where a writer of p keeps its state.
func (d *Driver) pendingKey(p string) string { return d.root + pendingDir + p[1:] }

func invalid(p string) error { return &driver.InvalidPathError{Driver: driverName, Path: p} }

func notFound(p string) error { return &driver.PathNotFoundError{Driver: driverName, Path: p} }

// wrap gives backend failures the driver name, the operation and the path.
func wrap(op, p string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", driverName, op, p, err)
}

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &d.bucket, Key: aws.String(d.key(p))})
	if err != nil {
		if isNotFound(err) {
			return nil, notFound(p)
		}
		return nil, wrap("get", p, err)
	}
	defer out.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, max(aws.ToInt64(out.ContentLength), 0)+bytes.MinRead))
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, wrap("get", p, err)
	}
	return buf.Bytes(), nil
}

// PutContent implements driver.Driver with one PutObject, which replaces
// the object atomically.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := d.putObject(ctx, d.key(p), content, nil); err != nil {
		return wrap("put", p, err)
	}
	return nil
}

func (d *Driver) putObject(ctx context.Context, key string, content []byte, meta map[string]string) error {
	_, err := d.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &d.bucket,
		Key:           &key,
		Body:          bytes.NewReader(content),
		ContentLength: aws.Int64(int64(len(content))),
		Metadata:      meta,
	})
	return err
}

// Reader implements driver.Driver with a ranged GET from offset.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if offset < 0 {
		return nil, fmt.Errorf("%s: read %s at %d: %w", driverName, p, offset, driver.ErrInvalidOffset)
	}
	in := &s3.GetObjectInput{Bucket: &d.bucket, Key: aws.String(d.key(p))}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := d.client.GetObject(ctx, in)
	if err == nil {
		return out.Body, nil
	}
	if isNotFound(err) {
		return nil, notFound(p)
	}
	if httpStatus(err) != http.StatusRequestedRangeNotSatisfiable {
		return nil, wrap("read", p, err)
	}
	// The range starts at or beyond the end: an empty reader at the
	// end exactly, an error beyond it.
	obj, err := d.head(ctx, d.key(p))
	if err != nil {
		return nil, wrap("read", p, err)
	}
	if obj == nil {
		return nil, notFound(p)
	}
	if offset == obj.size {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	return nil, fmt.Errorf("%s: read %s at %d beyond size %d: %w",
		driverName, p, offset, obj.size, driver.ErrInvalidOffset)
}

// object is what HeadObject tells about a committed file.
type object struct {
	size    int64
	modTime time.Time
	etag    string
}

// identity names this version of the object, for pending state to tell
// whether the file it was started from is still the one stored.
func (o *object) identity() string {
	if o == nil {
		return ""
	}
	return fmt.Sprintf("%s@%d", o.etag, o.modTime.Unix())
}

// head returns the object at key, or nil if there is none.
func (d *Driver) head(ctx context.Context, key string) (*object, error) {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return &object{
		size:    aws.ToInt64(out.ContentLength),
		modTime: aws.ToTime(out.LastModified),
		etag:    aws.ToString(out.ETag),
	}, nil
}

// Stat implements driver.Driver. A directory's modification time is the
// newest of the objects listed on the first page below it (up to 1000),
// which for small directories such as an upload session's is the time of
// the last change inside it.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	obj, err := d.head(ctx, d.key(p))
	if err != nil {
		return nil, wrap("stat", p, err)
	}
	if obj != nil {
		return driver.FileInfoFields{P: p, Sz: obj.size, MT: obj.modTime}, nil
	}
	prefix := d.dirPrefix(p)
	pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap("stat", p, err)
		}
		var newest time.Time
		found := false
		for _, o := range page.Contents {
			if !driver.ValidPath("/" + strings.TrimPrefix(aws.ToString(o.Key), prefix)) {
				continue
			}
			found = true
			if mt := aws.ToTime(o.LastModified); mt.After(newest) {
				newest = mt
			}
		}
		if found {
			return driver.FileInfoFields{P: p, MT: newest, Dir: true}, nil
		}
	}
	return nil, notFound(p)
}

// List implements driver.Driver with a delimited listing. Keys that map to
// no valid path (the pending state, objects other tools put there) are
// left out. Paths are returned sorted.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if !driver.ValidDirPath(p) {
		return nil, invalid(p)
	}
	prefix := d.dirPrefix(p)
	var out []string
	add := func(name string) {
		if driver.ValidPath("/" + name) { // one valid component
			out = append(out, join(p, name))
		}
	}
	pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket:    &d.bucket,
		Prefix:    &prefix,
		Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap("list", p, err)
		}
		for _, o := range page.Contents {
			add(strings.TrimPrefix(aws.ToString(o.Key), prefix))
		}
		for _, cp := range page.CommonPrefixes {
			add(strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/"))
		}
	}
	if len(out) == 0 && p != "/" {
		return nil, notFound(p)
	}
	// A name can be both a file and a directory in an object store.
	slices.Sort(out)
	return slices.Compact(out), nil
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// Move implements driver.Driver with a server-side copy (CopyObject, or
// UploadPartCopy for objects too large for it), then the deletion of src.
// Readers of dst see the old file or the new one; for a moment both src
// and dst exist.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if !driver.ValidPath(src) {
		return invalid(src)
	}
	if !driver.ValidPath(dst) {
		return invalid(dst)
	}
	srcKey, dstKey := d.key(src), d.key(dst)
	obj, err := d.head(ctx, srcKey)
	if err != nil {
		return wrap("move", src, err)
	}
	if obj == nil {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	if obj.size <= d.copyThreshold {
		_, err = d.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &d.bucket,
			Key:               &dstKey,
			CopySource:        aws.String(d.copySource(srcKey)),
			CopySourceIfMatch: &obj.etag,
		})
	} else {
		err = d.multipartCopy(ctx, dstKey, srcKey, obj)
	}
	if err != nil {
		if isNotFound(err) || httpStatus(err) == http.StatusPreconditionFailed {
			return notFound(src) // removed or replaced since the HEAD
		}
		return wrap("move", src, err)
	}
	// dst is in place: finish even if the caller gives up now, so the
	// move is not left half done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: &srcKey}); err != nil {
		return wrap("move", src, err)
	}
	return nil
}

// copySource is the x-amz-copy-source of key. Keys are made of characters
// that need no escaping.
func (d *Driver) copySource(key string) string { return d.bucket + "/" + key }

// multipartCopy copies obj from srcKey to dstKey in parts of at least
// copyPartSize, several at a time.
func (d *Driver) multipartCopy(ctx context.Context, dstKey, srcKey string, obj *object) error {
	partSize := max(d.copyPartSize, (obj.size+MaxParts-1)/MaxParts)
	up, err := d.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &d.bucket, Key: &dstKey})
	if err != nil {
		return err
	}
	uploadID := aws.ToString(up.UploadId)
	parts, err := d.copyParts(ctx, dstKey, uploadID, srcKey, obj.etag, 0, obj.size, partSize, 1)
	if err == nil {
		err = d.complete(ctx, dstKey, uploadID, parts)
	}
	if err != nil {
		d.abort(dstKey, uploadID)
		return err
	}
	return nil
}

// copyParts copies bytes [from, to) of srcKey into upload uploadID of
// dstKey, as parts of partSize (the last may be shorter) numbered from
// first on, and returns them in order.
func (d *Driver) copyParts(ctx context.Context, dstKey, uploadID, srcKey, etag string, from, to, partSize int64, first int32) ([]types.CompletedPart, error) {
	n := int((to - from + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	err := bulk.Run(ctx, n, copyConcurrency, func(ctx context.Context, i int) error {
		start := from + int64(i)*partSize
		end := min(start+partSize, to) - 1
		num := first + int32(i)
		out, err := d.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket:            &d.bucket,
			Key:               &dstKey,
			UploadId:          &uploadID,
			PartNumber:        &num,
			CopySource:        aws.String(d.copySource(srcKey)),
			CopySourceIfMatch: &etag,
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", start, end)),
		})
		if err != nil {
			return err
		}
		parts[i] = types.CompletedPart{PartNumber: &num, ETag: out.CopyPartResult.ETag}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return parts, nil
}

// complete finishes a multipart upload with parts, which are in order.
func (d *Driver) complete(ctx context.Context, key, uploadID string, parts []types.CompletedPart) error {
	_, err := d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &d.bucket,
		Key:             &key,
		UploadId:        &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return err
}

// abort discards a multipart upload. It runs when the operation that made
// the upload has failed, possibly because its context ended, so it has its
// own; an upload it fails to abort is left to the bucket's lifecycle rules.
func (d *Driver) abort(key, uploadID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = d.abortUpload(ctx, key, uploadID)
}

// abortUpload aborts an upload; one that is already gone is not an error.
func (d *Driver) abortUpload(ctx context.Context, key, uploadID string) error {
	_, err := d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &d.bucket,
		Key:      &key,
		UploadId: &uploadID,
	})
	if err != nil && !isNoSuchUpload(err) {
		return err
	}
	return nil
}

// Delete implements driver.Driver: the object at p, every object below p
// and the pending state of writers of those paths, with their multipart
// uploads, are removed. It is ErrNotFound only if there was none of these.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	key := d.key(p)
	obj, err := d.head(ctx, key)
	if err != nil {
		return wrap("delete", p, err)
	}
	pending, err := d.listPending(ctx, p)
	if err != nil {
		return wrap("delete", p, err)
	}
	for _, pk := range pending {
		if err := d.discardPendingKey(ctx, pk); err != nil {
			return wrap("delete", p, err)
		}
	}
	n, err := d.deletePrefix(ctx, key+"/")
	if err != nil {
		return wrap("delete", p, err)
	}
	if obj != nil {
		if _, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: &key}); err != nil {
			return wrap("delete", p, err)
		}
	}
	if obj == nil && n == 0 && len(pending) == 0 {
		return notFound(p)
	}
	return nil
}

// deletePrefix removes every key that starts with prefix, a page of the
// listing at a time, and returns how many there were.
func (d *Driver) deletePrefix(ctx context.Context, prefix string) (int, error) {
	n := 0
	pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return n, err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := d.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &d.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return n, err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return n, fmt.Errorf("delete %s: %s: %s (and %d more errors)",
				aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
		n += len(ids)
	}
	return n, nil
}

// listKeys returns every key that starts with prefix.
func (d *Driver) listKeys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// listPending returns the pending-state keys of p and of every path below
// it.
func (d *Driver) listPending(ctx context.Context, p string) ([]string, error) {
	pk := d.pendingKey(p)
	keys, err := d.listKeys(ctx, pk)
	if err != nil {
		return nil, err
	}
	// The prefix also matched siblings such as "/ab" for "/a".
	return slices.DeleteFunc(keys, func(k string) bool { return k != pk && !strings.HasPrefix(k, pk+"/") }), nil
}

// RedirectURL implements driver.Redirector when Options.Redirect is set: a
// presigned GET URL of the object, valid for Options.RedirectExpiry. Other
// methods than GET (a HEAD, whose signature would differ) get "", so the
// registry answers them itself. Whether the object exists is the caller's
// business; the URL of a missing one fails when used.
func (d *Driver) RedirectURL(r *http.Request, p string) (string, error) {
	if !driver.ValidPath(p) {
		return "", invalid(p)
	}
	if !d.redirect || r.Method != http.MethodGet {
		return "", nil
	}
	req, err := d.presign.PresignGetObject(r.Context(), &s3.GetObjectInput{Bucket: &d.bucket, Key: aws.String(d.key(p))})
	if err != nil {
		return "", wrap("presign", p, err)
	}
	return req.URL, nil
}
