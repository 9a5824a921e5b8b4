// Package gcs is a storage driver for Google Cloud Storage, built on the
// Cloud Storage client library for Go (cloud.google.com/go/storage). It
// also runs against emulators that speak the same JSON and XML APIs, such
// as fake-gcs-server.
//
// # Layout
//
// A driver path "/a/b" is the object ROOT + "a/b", where ROOT is the
// configured root directory followed by a slash (or empty: the bucket's
// top level). Directories are implied by names: a directory exists while
// some object lies below it. The driver's own state lives below names that
// no valid driver path can reach ("~" is not allowed in a path component),
// so it never shows in List, Walk or Stat:
//
//	ROOT + "a/b"                         the committed file
//	ROOT + "~pending/a/b"                a writer's state for "/a/b": the
//	                                     bytes not yet in a full part, with
//	                                     the upload's id, the number of parts,
//	                                     the part size, the size of the head
//	                                     and the committed file it continues
//	                                     in its metadata
//	ROOT + "~parts/a/b/~ID/000001"       the upload's parts, one object each
//	ROOT + "~parts/a/b/~ID/head"         the committed file a writer
//	                                     continues, copied by the server
//
// # Writers
//
// A FileWriter buffers one part (Options.PartSize) in memory and uploads
// every full part as an object of its own. Commit uploads the rest as the
// last part and composes the parts into the file with the server-side
// compose operation (up to 32 sources per request; more are composed in a
// tree), which replaces the file atomically; a file smaller than a part is
// one upload. Close writes the pending object; a Writer(path, true) in any
// process reads it, checks that the parts it names exist and carries on,
// so an upload resumes after a restart or on another replica. Content
// written after the last Close by a process that died is lost; what Close
// kept is never mixed with it. Writer(path, false) discards earlier
// pending state and parts at once. The pending object records the
// generation of the committed file it continues: if that file is replaced
// or removed by other means, the pending state is stale and discarded.
//
// # Durability
//
// Every write is acknowledged by Cloud Storage only once the object is
// stored durably, and reads after a write see it (Cloud Storage is
// strongly consistent). So when berth answers a push with 201 Created, the
// blob's bytes are an object that Cloud Storage has acknowledged; an
// upload's data is durable up to its last Close (the end of the previous
// request of the upload).
//
// # Requests
//
// Failed requests (HTTP 429, 5xx, network errors) are retried with
// exponential backoff and jitter, up to Options.MaxAttempts attempts,
// including uploads of parts and small files, which the driver keeps in
// memory until they are acknowledged. Move copies on the server (the
// rewrite operation, resumed until done) and then deletes the source, with
// generation preconditions so that a file replaced meanwhile is neither
// copied nor deleted. With Options.Redirect, blob GETs are answered with a
// V4 signed URL of the object.
package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berthhq/berth/storage/driver/internal/bulk"
	"github.com/berthhq/berth/storage/driver/internal/parts"
	"io"
	"iter"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/keywalk"
)

const (
	driverName = "gcs"

	// MinPartSize and MaxPartSize bound Options.PartSize: parts are
	// uploaded whole from memory, one buffer per open writer.
	MinPartSize = 256 << 10
	MaxPartSize = 1 << 30
	// MaxParts bounds the parts of one file; with the default part size a
	// file may hold 160 GiB.
	MaxParts = 10_000
	// DefaultPartSize is the part size when Options.PartSize is zero.
	DefaultPartSize = 16 << 20
	// DefaultRedirectExpiry is how long a signed URL stays valid when
	// Options.RedirectExpiry is zero.
	DefaultRedirectExpiry = 20 * time.Minute
	// DefaultMaxAttempts and DefaultMaxBackoff bound retries when the
	// corresponding options are zero.
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 20 * time.Second

	// maxComposeSources is Cloud Storage's limit per compose request.
	maxComposeSources = 32
	// deleteConcurrency bounds the deletions in flight when a directory
	// or an upload's parts are removed (the JSON API deletes one object
	// per request).
	deleteConcurrency = 16

	pendingDir = "~pending/"
	partsDir   = "~parts/"
)

// Options configure a Driver. Bucket is required.
type Options struct {
	// Bucket holds the files. It must exist.
	Bucket string
	// Endpoint is the URL of the service, for an emulator such as
	// fake-gcs-server ("http://127.0.0.1:4443"); empty means Google
	// Cloud Storage. A URL without a path gets the JSON API's
	// "/storage/v1/".
	Endpoint string
	// CredentialsFile is a service account key file (JSON). Empty means
	// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
	// the gcloud configuration, the metadata server). Its key also signs
	// redirect URLs.
	CredentialsFile string
	// Anonymous sends requests without credentials: for emulators and
	// public buckets. A CredentialsFile is then used only to sign URLs.
	Anonymous bool
	// RootDirectory is a prefix inside the bucket under which all files
	// live, e.g. "registry"; empty means the bucket's top level. It is
	// made of valid path components.
	RootDirectory string
	// PartSize is the size of the parts of a file written with a
	// FileWriter, between MinPartSize and MaxPartSize; zero means
	// DefaultPartSize. Each open FileWriter buffers up to one part in
	// memory. A resumed writer keeps the part size it was started with.
	PartSize int64
	// Redirect makes the driver a driver.Redirector: blob GETs are
	// answered with a redirect to a signed URL of the object. Signing
	// needs a private key (CredentialsFile) or credentials allowed to
	// sign blobs through the IAM API.
	Redirect bool
	// RedirectExpiry is how long signed URLs stay valid, up to 7 days;
	// zero means DefaultRedirectExpiry.
	RedirectExpiry time.Duration
	// MaxAttempts bounds the attempts of one request, the first included;
	// zero means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts; zero means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Config is the driver's configuration section (storage.gcs in berth's
// configuration; BERTH_STORAGE_GCS_KEY in the environment).
type Config struct {
	// Bucket is required.
	Bucket string `yaml:"bucket"`
	// Endpoint is the service URL; empty for Google Cloud Storage.
	Endpoint string `yaml:"endpoint"`
	// CredentialsFile is a service account key file; empty for
	// Application Default Credentials.
	CredentialsFile string `yaml:"credentialsFile"`
	// Anonymous sends requests without credentials (emulators).
	Anonymous bool `yaml:"anonymous"`
	// RootDirectory is a prefix inside the bucket.
	RootDirectory string `yaml:"rootDirectory"`
	// PartSize is the part size in bytes (0: the default).
	PartSize int64 `yaml:"partSize"`
	// Redirect sends blob GETs to signed URLs.
	Redirect bool `yaml:"redirect"`
	// RedirectExpiry is how long a signed URL lives (0: the default).
	RedirectExpiry time.Duration `yaml:"redirectExpiry"`
	// MaxAttempts bounds retries of failed requests (0: the default).
	MaxAttempts int `yaml:"maxAttempts"`
}

// Options returns the driver options c describes.
func (c *Config) Options() Options {
	return Options{
		Bucket: c.Bucket, Endpoint: c.Endpoint, CredentialsFile: c.CredentialsFile, Anonymous: c.Anonymous,
		RootDirectory: c.RootDirectory, PartSize: c.PartSize, Redirect: c.Redirect,
		RedirectExpiry: c.RedirectExpiry, MaxAttempts: c.MaxAttempts,
	}
}

// Validate checks the options without contacting the service; New does
// too. It reports every problem at once.
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
	if o.PartSize != 0 && (o.PartSize < MinPartSize || o.PartSize > MaxPartSize) {
		problems = append(problems, fmt.Sprintf("part size %d is outside [%d, %d]", o.PartSize, MinPartSize, MaxPartSize))
	}
	if o.RedirectExpiry < 0 || o.RedirectExpiry > 7*24*time.Hour {
		problems = append(problems, "redirect expiry is out of range (up to 7 days)")
	}
	if o.MaxAttempts < 0 {
		problems = append(problems, "max attempts is out of range")
	}
	if o.MaxBackoff < 0 {
		problems = append(problems, "max backoff is out of range")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Driver stores files as objects in one bucket. It implements
// driver.Driver and, with Options.Redirect, driver.Redirector. It keeps no
// state besides its configuration, so any number of Drivers, in one
// process or several, may share a bucket and root.
type Driver struct {
	client   *storage.Client
	bucket   *storage.BucketHandle
	name     string
	root     string // "" or ends with "/"
	partSize int64

	redirect bool
	expiry   time.Duration
	sign     storage.SignedURLOptions // without Expires

	maxAttempts int
	maxBackoff  time.Duration

	// bufs recycles part buffers of partSize between writers.
	bufs parts.Pool
}

var _ driver.Driver = (*Driver)(nil)

// New returns a Driver for the bucket described by opts. It checks that
// the bucket exists and can be read, so that a wrong configuration fails
// at start rather than on the first push.
func New(ctx context.Context, opts Options) (*Driver, error) {
	d, err := newDriver(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := d.bucket.Attrs(ctx); err != nil {
		d.client.Close()
		return nil, fmt.Errorf("%s: bucket %q: %w", driverName, opts.Bucket, err)
	}
	return d, nil
}

// serviceAccount is the part of a key file that signs URLs.
type serviceAccount struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
}

func newDriver(ctx context.Context, opts Options) (*Driver, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	d := &Driver{
		name:        opts.Bucket,
		partSize:    cmp(opts.PartSize, DefaultPartSize),
		redirect:    opts.Redirect,
		maxAttempts: int(cmp(int64(opts.MaxAttempts), DefaultMaxAttempts)),
		maxBackoff:  time.Duration(cmp(int64(opts.MaxBackoff), int64(DefaultMaxBackoff))),
	}
	d.bufs.Size = d.partSize
	if root := strings.Trim(opts.RootDirectory, "/"); root != "" {
		d.root = root + "/"
	}
	d.sign = storage.SignedURLOptions{Method: http.MethodGet, Scheme: storage.SigningSchemeV4}
	var clientOpts []option.ClientOption
	if opts.Endpoint != "" {
		u, _ := url.Parse(opts.Endpoint)
		if u.Path == "" || u.Path == "/" {
			u.Path = "/storage/v1/"
		}
		clientOpts = append(clientOpts, option.WithEndpoint(u.String()))
		d.sign.Insecure = u.Scheme == "http"
		d.sign.Hostname = u.Host
	}
	if opts.CredentialsFile != "" {
		key, err := os.ReadFile(opts.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("%s: credentials: %w", driverName, err)
		}
		var sa serviceAccount
		if err := json.Unmarshal(key, &sa); err != nil || sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
			return nil, fmt.Errorf("%s: credentials file %s is not a service account key (type, client_email and private_key)", driverName, opts.CredentialsFile)
		}
		d.sign.GoogleAccessID, d.sign.PrivateKey = sa.ClientEmail, []byte(sa.PrivateKey)
		if !opts.Anonymous {
			clientOpts = append(clientOpts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
		}
	}
	if opts.Anonymous {
		clientOpts = append(clientOpts, option.WithoutAuthentication())
	}
	client, err := storage.NewClient(ctx, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	// Every operation is retried, not only those the library deems
	// idempotent: the driver's writes are idempotent (a part, a pending
	// object or a file written twice holds the same bytes), and deletes
	// tolerate an object already gone.
	client.SetRetry(
		storage.WithBackoff(d.backoff()),
		storage.WithPolicy(storage.RetryAlways),
		storage.WithMaxAttempts(d.maxAttempts),
	)
	d.client = client
	d.bucket = client.Bucket(opts.Bucket)
	d.expiry = opts.RedirectExpiry
	if d.expiry == 0 {
		d.expiry = DefaultRedirectExpiry
	}
	return d, nil
}

func cmp[T int64 | int](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func (d *Driver) backoff() gax.Backoff {
	return gax.Backoff{Initial: 100 * time.Millisecond, Max: d.maxBackoff, Multiplier: 2}
}

// Close releases the client's connections.
func (d *Driver) Close() error { return d.client.Close() }

// Name implements driver.Driver.
func (d *Driver) Name() string { return driverName }

// key maps a valid path to its object name.
func (d *Driver) key(p string) string { return d.root + p[1:] }

// dirPrefix is the name prefix of everything below directory p.
func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.root
	}
	return d.key(p) + "/"
}

func (d *Driver) pendingKey(p string) string { return d.root + pendingDir + p[1:] }

// partsPrefix is the prefix of the parts of every upload of p; the "~"
// keeps out the parts of files below p.
func (d *Driver) partsPrefix(p string) string { return d.root + partsDir + p[1:] + "/~" }

func (d *Driver) obj(key string) *storage.ObjectHandle { return d.bucket.Object(key) }

func invalid(p string) error { return &driver.InvalidPathError{Driver: driverName, Path: p} }

func notFound(p string) error { return &driver.PathNotFoundError{Driver: driverName, Path: p} }

func wrap(op, p string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", driverName, op, p, err)
}

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	r, err := d.obj(d.key(p)).NewReader(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil, notFound(p)
		}
		return nil, wrap("get", p, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, wrap("get", p, err)
	}
	return b, nil
}

// PutContent implements driver.Driver with one upload, which replaces the
// object atomically.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := d.upload(ctx, d.obj(d.key(p)), content, nil); err != nil {
		return wrap("put", p, err)
	}
	return nil
}

// upload stores content as the object h in a single request, retried
// from the bytes in memory: with chunking off the library would not
// retry it, and with chunking on it would copy every part into a buffer
// of its own.
func (d *Driver) upload(ctx context.Context, h *storage.ObjectHandle, content []byte, meta map[string]string) error {
	bo := d.backoff()
	for attempt := 1; ; attempt++ {
		w := h.NewWriter(ctx)
		w.ChunkSize = 0
		w.Metadata = meta
		_, err := w.Write(content)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err == nil || attempt >= d.maxAttempts || !storage.ShouldRetry(err) {
			return err
		}
		if err := gax.Sleep(ctx, bo.Pause()); err != nil {
			return err
		}
	}
}

// Reader implements driver.Driver with a ranged read from offset.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if offset < 0 {
		return nil, fmt.Errorf("%s: read %s at %d: %w", driverName, p, offset, driver.ErrInvalidOffset)
	}
	h := d.obj(d.key(p))
	r, err := h.NewRangeReader(ctx, offset, -1)
	if err == nil {
		return r, nil
	}
	if isNotFound(err) {
		return nil, notFound(p)
	}
	if httpStatus(err) != http.StatusRequestedRangeNotSatisfiable {
		return nil, wrap("read", p, err)
	}
	// The range starts at or beyond the end: an empty reader at the end
	// exactly, an error beyond it.
	attrs, err := h.Attrs(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil, notFound(p)
		}
		return nil, wrap("read", p, err)
	}
	if offset == attrs.Size {
		return io.NopCloser(strings.NewReader("")), nil
	}
	return nil, fmt.Errorf("%s: read %s at %d beyond size %d: %w", driverName, p, offset, attrs.Size, driver.ErrInvalidOffset)
}

// attrs returns the attributes of the object at key, or nil if there is
// none.
func (d *Driver) attrs(ctx context.Context, key string) (*storage.ObjectAttrs, error) {
	a, err := d.obj(key).Attrs(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return a, nil
}

// identity names a version of a committed file: its generation, which
// changes with every write.
func identity(a *storage.ObjectAttrs) string {
	if a == nil {
		return ""
	}
	return strconv.FormatInt(a.Generation, 10)
}

// Stat implements driver.Driver. A directory's modification time is the
// newest of the first 1000 objects below it, which for small directories
// such as an upload session's is the time of the last change inside it.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	a, err := d.attrs(ctx, d.key(p))
	if err != nil {
		return nil, wrap("stat", p, err)
	}
	if a != nil {
		return driver.FileInfoFields{P: p, Sz: a.Size, MT: a.Updated}, nil
	}
	prefix := d.dirPrefix(p)
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Updated"}); err != nil {
		return nil, wrap("stat", p, err)
	}
	it := d.bucket.Objects(ctx, q)
	var newest time.Time
	found := false
	for i := 0; i < 1000 || !found; i++ {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, wrap("stat", p, err)
		}
		if !driver.ValidPath("/" + strings.TrimPrefix(o.Name, prefix)) {
			continue
		}
		found = true
		if o.Updated.After(newest) {
			newest = o.Updated
		}
	}
	if !found {
		return nil, notFound(p)
	}
	return driver.FileInfoFields{P: p, MT: newest, Dir: true}, nil
}

// List implements driver.Driver with a delimited listing. Names that map
// to no valid path (the driver's state, objects other tools put there) are
// left out.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if !driver.ValidDirPath(p) {
		return nil, invalid(p)
	}
	prefix := d.dirPrefix(p)
	q := &storage.Query{Prefix: prefix, Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, wrap("list", p, err)
	}
	var out []string
	it := d.bucket.Objects(ctx, q)
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, wrap("list", p, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(o.Name+o.Prefix, prefix), "/")
		if driver.ValidPath("/" + name) { // one valid component
			out = append(out, keywalk.Join(p, name))
		}
	}
	if len(out) == 0 && p != "/" {
		return nil, notFound(p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Walk implements driver.Driver with one flat listing below p, from which
// package keywalk presents the directories the names imply.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	if !driver.ValidDirPath(p) {
		return invalid(p)
	}
	prefix := d.dirPrefix(p)
	objects := func(yield func(keywalk.Object, error) bool) {
		q := &storage.Query{Prefix: prefix}
		if err := q.SetAttrSelection([]string{"Name", "Size", "Updated"}); err != nil {
			yield(keywalk.Object{}, wrap("walk", p, err))
			return
		}
		it := d.bucket.Objects(ctx, q)
		for {
			o, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield(keywalk.Object{}, wrap("walk", p, err))
				return
			}
			if !yield(keywalk.Object{Rel: strings.TrimPrefix(o.Name, prefix), Size: o.Size, ModTime: o.Updated}, nil) {
				return
			}
		}
	}
	found, err := keywalk.Walk(ctx, p, objects, fn)
	if err != nil {
		return err
	}
	if !found && p != "/" {
		return notFound(p)
	}
	return nil
}

// Move implements driver.Driver with a server-side copy (the rewrite
// operation), then the deletion of src. Both are conditional on the
// generation of src that was found, so a src replaced in the meantime is
// neither copied nor deleted. Readers of dst see the old file or the new
// one; for a moment both src and dst exist.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if !driver.ValidPath(src) {
		return invalid(src)
	}
	if !driver.ValidPath(dst) {
		return invalid(dst)
	}
	a, err := d.attrs(ctx, d.key(src))
	if err != nil {
		return wrap("move", src, err)
	}
	if a == nil {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	from := d.obj(d.key(src)).If(storage.Conditions{GenerationMatch: a.Generation})
	if _, err := d.obj(d.key(dst)).CopierFrom(from).Run(ctx); err != nil {
		if isNotFound(err) || httpStatus(err) == http.StatusPreconditionFailed {
			return notFound(src)
		}
		return wrap("move", src, err)
	}
	// dst is in place: finish even if the caller gives up now.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := from.Delete(ctx); err != nil && !isNotFound(err) && httpStatus(err) != http.StatusPreconditionFailed {
		return wrap("move", src, err)
	}
	return nil
}

// Delete implements driver.Driver: the object at p, every object below p,
// and the pending state and parts of writers of those paths are removed.
// It is ErrNotFound only if there was none of these.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	key := d.key(p)
	a, err := d.attrs(ctx, key)
	if err != nil {
		return wrap("delete", p, err)
	}
	pending, err := d.listPending(ctx, p)
	if err != nil {
		return wrap("delete", p, err)
	}
	parts, err := d.deletePrefix(ctx, d.root+partsDir+p[1:]+"/")
	if err != nil {
		return wrap("delete", p, err)
	}
	if err := d.deleteKeys(ctx, pending); err != nil {
		return wrap("delete", p, err)
	}
	n, err := d.deletePrefix(ctx, key+"/")
	if err != nil {
		return wrap("delete", p, err)
	}
	if a != nil {
		if err := d.obj(key).Delete(ctx); err != nil && !isNotFound(err) {
			return wrap("delete", p, err)
		}
	}
	if a == nil && n == 0 && len(pending) == 0 && parts == 0 {
		return notFound(p)
	}
	return nil
}

// listObjects lists the objects q selects.
func listObjects(ctx context.Context, b *storage.BucketHandle, q *storage.Query) iter.Seq2[*storage.ObjectAttrs, error] {
	return func(yield func(*storage.ObjectAttrs, error) bool) {
		it := b.Objects(ctx, q)
		for {
			o, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if !yield(o, err) || err != nil {
				return
			}
		}
	}
}

// listKeys returns the names of the objects that start with prefix.
func (d *Driver) listKeys(ctx context.Context, prefix string) ([]string, error) {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, err
	}
	var keys []string
	for o, err := range listObjects(ctx, d.bucket, q) {
		if err != nil {
			return nil, err
		}
		keys = append(keys, o.Name)
	}
	return keys, nil
}

// listPending returns the pending-state names of p and of every path
// below it.
func (d *Driver) listPending(ctx context.Context, p string) ([]string, error) {
	pk := d.pendingKey(p)
	keys, err := d.listKeys(ctx, pk)
	if err != nil {
		return nil, err
	}
	// The prefix also matched siblings such as "/ab" for "/a".
	return slices.DeleteFunc(keys, func(k string) bool { return k != pk && !strings.HasPrefix(k, pk+"/") }), nil
}

// deletePrefix removes every object whose name starts with prefix and
// returns how many there were.
func (d *Driver) deletePrefix(ctx context.Context, prefix string) (int, error) {
	keys, err := d.listKeys(ctx, prefix)
	if err != nil {
		return 0, err
	}
	return len(keys), d.deleteKeys(ctx, keys)
}

// deleteKeys removes the objects named keys, several at a time. Objects
// already gone are no error.
func (d *Driver) deleteKeys(ctx context.Context, keys []string) error {
	return bulk.Each(ctx, keys, deleteConcurrency, func(ctx context.Context, k string) error {
		if err := d.obj(k).Delete(ctx); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	})
}

// RedirectURL implements driver.Redirector when Options.Redirect is set: a
// V4 signed GET URL of the object, valid for Options.RedirectExpiry. Other
// methods than GET get "", so the registry answers them itself.
func (d *Driver) RedirectURL(r *http.Request, p string) (string, error) {
	if !driver.ValidPath(p) {
		return "", invalid(p)
	}
	if !d.redirect || r.Method != http.MethodGet {
		return "", nil
	}
	opts := d.sign
	opts.Expires = time.Now().Add(d.expiry)
	u, err := d.bucket.SignedURL(d.key(p), &opts)
	if err != nil {
		return "", wrap("sign", p, err)
	}
	return u, nil
}
