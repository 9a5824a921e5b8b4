// Package azure is a storage driver for Azure Blob Storage, built on the
// Azure SDK for Go (github.com/Azure/azure-sdk-for-go/sdk/storage/azblob).
// It also runs against Azurite, Microsoft's emulator.
//
// # Layout
//
// A driver path "/a/b" is the block blob ROOT + "a/b" of the configured
// container, where ROOT is the configured root directory followed by a
// slash (or empty). Directories are implied by blob names: a directory
// exists while some blob lies below it. A writer's state lives below a
// name no valid driver path can reach ("~" is not allowed in a path
// component), so it never shows in List, Walk or Stat:
//
//	ROOT + "a/b"            the committed file, and the blocks staged for
//	                        its next version (uncommitted blocks are not
//	                        part of the blob until a block list commits
//	                        them, and are invisible to readers)
//	ROOT + "~pending/a/b"   a writer's state for "/a/b": the bytes not yet
//	                        in a full block, with the upload's id, the
//	                        number of blocks, the block size and the ETag
//	                        of the committed file it continues in its
//	                        metadata
//
// # Writers
//
// A FileWriter buffers one block (Options.BlockSize) in memory and stages
// every full block on the file's own blob, with block ids made of the
// upload's id and the block's number. Commit stages the rest and commits
// the block list, which replaces the blob atomically; a file smaller than
// a block is one Put Blob. Close writes the pending blob; a Writer(path,
// true) in any process reads it, checks with Get Block List that the
// blocks it names are staged and carries on, so an upload resumes after a
// restart or on another replica. Content written after the last Close by
// a process that died is lost; what Close kept is never mixed with it.
// Azure discards uncommitted blocks a week after they were staged, and
// whenever a blob is written: a pending state whose blocks are gone, or
// whose committed file changed (its ETag), is stale and discarded.
// Blocks of a cancelled new file stay invisible until Azure discards them.
//
// # Durability
//
// Azure acknowledges Put Blob, Put Block and Put Block List only once the
// data is stored durably (three copies at least, as the account's
// redundancy says), and reads after a write see it. So when berth answers
// a push with 201 Created, the blob's bytes are a blob that Azure Storage
// has acknowledged; an upload's data is durable up to its last Close (the
// end of the previous request of the upload).
//
// # Requests
//
// Requests are authorised with the account's shared key. Failed requests
// (HTTP 408, 429, 500, 502, 503, 504, network errors) are retried with
// exponential backoff up to Options.MaxAttempts attempts; bodies are
// resent from memory. Move copies on the server (Copy Blob from a SAS URL
// of the source, conditional on its ETag, waited for until done) and then
// deletes the source if it is still that version. With Options.Redirect,
// blob GETs are answered with a read-only SAS URL of the blob.
package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/berthhq/berth/storage/driver/internal/bulk"
	"github.com/berthhq/berth/storage/driver/internal/parts"
	"io"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/keywalk"
)

const (
	driverName = "azure"

	// MinBlockSize and MaxBlockSize bound Options.BlockSize: blocks are
	// staged whole from memory, one buffer per open writer (Azure itself
	// takes blocks up to 4000 MiB).
	MinBlockSize = 256 << 10
	MaxBlockSize = 1 << 30
	// MaxBlocks is Azure's limit on the committed blocks of a blob. With
	// the default block size a file may hold 800 GiB.
	MaxBlocks = 50_000
	// DefaultBlockSize is the block size when Options.BlockSize is zero.
	DefaultBlockSize = 16 << 20
	// DefaultRedirectExpiry is how long a SAS URL stays valid when
	// Options.RedirectExpiry is zero.
	DefaultRedirectExpiry = 20 * time.Minute
	// DefaultMaxAttempts and DefaultMaxBackoff bound retries when the
	// corresponding options are zero.
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 20 * time.Second

	// copyPollMax caps the wait between two looks at a server-side
	// copy in progress.
	copyPollMax = time.Second
	// sasSkew starts SAS tokens this much in the past, for clocks that
	// lag behind the service's.
	sasSkew = 5 * time.Minute
	// deleteConcurrency bounds the deletions in flight when a directory
	// is removed.
	deleteConcurrency = 16

	pendingDir = "~pending/"
)

// Options configure a Driver. AccountName, AccountKey and Container are
// required.
type Options struct {
	// AccountName and AccountKey are the storage account's name and one
	// of its access keys (base64), which authorise every request and
	// sign redirect URLs.
	AccountName string
	AccountKey  string
	// Container holds the files. It must exist.
	Container string
	// Endpoint is the account's blob service URL; empty means
	// https://ACCOUNT.blob.core.windows.net. Azurite's is
	// http://127.0.0.1:10000/ACCOUNT.
	Endpoint string
	// RootDirectory is a prefix inside the container under which all
	// files live; empty means the container's top level. It is made of
	// valid path components.
	RootDirectory string
	// BlockSize is the size of the blocks of a file written with a
	// FileWriter, between MinBlockSize and MaxBlockSize; zero means
	// DefaultBlockSize. Each open FileWriter buffers up to one block in
	// memory. A resumed writer keeps the block size it was started with.
	BlockSize int64
	// Redirect makes the driver a driver.Redirector: blob GETs are
	// answered with a redirect to a read-only SAS URL of the blob.
	Redirect bool
	// RedirectExpiry is how long SAS URLs stay valid, up to 7 days; zero
	// means DefaultRedirectExpiry.
	RedirectExpiry time.Duration
	// MaxAttempts bounds the attempts of one request, the first
	// included; zero means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts; zero means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Config is the driver's configuration section (storage.azure in berth's
// configuration; BERTH_STORAGE_AZURE_KEY in the environment).
type Config struct {
	// AccountName and AccountKey are required; the key is never logged.
	AccountName string `yaml:"accountName"`
	AccountKey  string `yaml:"accountKey"`
	// Container is required.
	Container string `yaml:"container"`
	// Endpoint is the blob service URL; empty for Azure's.
	Endpoint string `yaml:"endpoint"`
	// RootDirectory is a prefix inside the container.
	RootDirectory string `yaml:"rootDirectory"`
	// BlockSize is the block size in bytes (0: the default).
	BlockSize int64 `yaml:"blockSize"`
	// Redirect sends blob GETs to SAS URLs.
	Redirect bool `yaml:"redirect"`
	// RedirectExpiry is how long a SAS URL lives (0: the default).
	RedirectExpiry time.Duration `yaml:"redirectExpiry"`
	// MaxAttempts bounds retries of failed requests (0: the default).
	MaxAttempts int `yaml:"maxAttempts"`
}

// Options returns the driver options c describes.
func (c *Config) Options() Options {
	return Options{
		AccountName: c.AccountName, AccountKey: c.AccountKey, Container: c.Container, Endpoint: c.Endpoint,
		RootDirectory: c.RootDirectory, BlockSize: c.BlockSize, Redirect: c.Redirect,
		RedirectExpiry: c.RedirectExpiry, MaxAttempts: c.MaxAttempts,
	}
}

// Validate checks the options without contacting the service; New does
// too. It reports every problem at once.
func (o *Options) Validate() error {
	var problems []string
	if o.AccountName == "" {
		problems = append(problems, "account name is required")
	}
	if o.AccountKey == "" {
		problems = append(problems, "account key is required")
	} else if _, err := container.NewSharedKeyCredential(max(o.AccountName, "x"), o.AccountKey); err != nil {
		problems = append(problems, "account key is not base64")
	}
	if o.Container == "" {
		problems = append(problems, "container is required")
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
	if o.BlockSize != 0 && (o.BlockSize < MinBlockSize || o.BlockSize > MaxBlockSize) {
		problems = append(problems, fmt.Sprintf("block size %d is outside [%d, %d]", o.BlockSize, MinBlockSize, MaxBlockSize))
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

// Driver stores files as block blobs in one container. It implements
// driver.Driver and, with Options.Redirect, driver.Redirector. It keeps no
// state besides its configuration, so any number of Drivers, in one
// process or several, may share a container and root.
type Driver struct {
	c         *container.Client
	root      string // "" or ends with "/"
	blockSize int64
	redirect  bool
	expiry    time.Duration

	// bufs recycles block buffers of blockSize between writers.
	bufs parts.Pool
}

var _ driver.Driver = (*Driver)(nil)

// New returns a Driver for the container described by opts. It checks
// that the container exists and that the key may use it, so that a wrong
// configuration fails at start rather than on the first push.
func New(ctx context.Context, opts Options) (*Driver, error) {
	d, err := newDriver(opts)
	if err != nil {
		return nil, err
	}
	if _, err := d.c.GetProperties(ctx, nil); err != nil {
		return nil, fmt.Errorf("%s: container %q: %w", driverName, opts.Container, err)
	}
	return d, nil
}

func newDriver(opts Options) (*Driver, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = "https://" + opts.AccountName + ".blob.core.windows.net"
	}
	cred, err := container.NewSharedKeyCredential(opts.AccountName, opts.AccountKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	attempts := opts.MaxAttempts
	if attempts == 0 {
		attempts = DefaultMaxAttempts
	}
	backoff := opts.MaxBackoff
	if backoff == 0 {
		backoff = DefaultMaxBackoff
	}
	c, err := container.NewClientWithSharedKeyCredential(strings.TrimSuffix(endpoint, "/")+"/"+opts.Container, cred,
		&container.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{
			MaxRetries:    int32(attempts - 1),
			RetryDelay:    100 * time.Millisecond,
			MaxRetryDelay: backoff,
		}}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	d := &Driver{c: c, blockSize: opts.BlockSize, redirect: opts.Redirect, expiry: opts.RedirectExpiry}
	if d.blockSize == 0 {
		d.blockSize = DefaultBlockSize
	}
	d.bufs.Size = d.blockSize
	if d.expiry == 0 {
		d.expiry = DefaultRedirectExpiry
	}
	if root := strings.Trim(opts.RootDirectory, "/"); root != "" {
		d.root = root + "/"
	}
	return d, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return driverName }

// key maps a valid path to its blob name.
func (d *Driver) key(p string) string { return d.root + p[1:] }

func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.root
	}
	return d.key(p) + "/"
}

func (d *Driver) pendingKey(p string) string { return d.root + pendingDir + p[1:] }

func (d *Driver) blob(key string) *blockblob.Client { return d.c.NewBlockBlobClient(key) }

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
	r, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, wrap("get", p, err)
	}
	return b, nil
}

// PutContent implements driver.Driver with one Put Blob, which replaces
// the blob atomically.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := d.put(ctx, d.key(p), content, nil); err != nil {
		return wrap("put", p, err)
	}
	return nil
}

func (d *Driver) put(ctx context.Context, key string, content []byte, meta map[string]*string) error {
	_, err := d.blob(key).Upload(ctx, nopCloser{bytes.NewReader(content)}, &blockblob.UploadOptions{Metadata: meta})
	return err
}

// nopCloser makes a bytes.Reader an io.ReadSeekCloser, which the SDK
// rewinds to resend a body.
type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Reader implements driver.Driver with a ranged GET from offset; a
// connection that breaks while the body streams is resumed where it broke.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	if offset < 0 {
		return nil, fmt.Errorf("%s: read %s at %d: %w", driverName, p, offset, driver.ErrInvalidOffset)
	}
	b := d.c.NewBlobClient(d.key(p))
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: offset}})
	if err == nil {
		return resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3}), nil
	}
	if isNotFound(err) {
		return nil, notFound(p)
	}
	if httpStatus(err) != http.StatusRequestedRangeNotSatisfiable {
		return nil, wrap("read", p, err)
	}
	// The range starts at or beyond the end: an empty reader at the end
	// exactly, an error beyond it.
	props, err := d.props(ctx, d.key(p))
	if err != nil {
		return nil, wrap("read", p, err)
	}
	if props == nil {
		return nil, notFound(p)
	}
	if offset == props.size {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	return nil, fmt.Errorf("%s: read %s at %d beyond size %d: %w", driverName, p, offset, props.size, driver.ErrInvalidOffset)
}

// object is what Get Blob Properties tells of a committed blob.
type object struct {
	size    int64
	modTime time.Time
	etag    azcore.ETag
	meta    map[string]*string
}

// identity names this version of the blob; its ETag changes with every
// write.
func (o *object) identity() string {
	if o == nil {
		return ""
	}
	return string(o.etag)
}

// props returns the committed blob at key, or nil if there is none.
func (d *Driver) props(ctx context.Context, key string) (*object, error) {
	r, err := d.c.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	o := &object{meta: r.Metadata}
	if r.ContentLength != nil {
		o.size = *r.ContentLength
	}
	if r.LastModified != nil {
		o.modTime = *r.LastModified
	}
	if r.ETag != nil {
		o.etag = *r.ETag
	}
	return o, nil
}

// Stat implements driver.Driver. A directory's modification time is the
// newest of the blobs on the first page of the listing below it.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	o, err := d.props(ctx, d.key(p))
	if err != nil {
		return nil, wrap("stat", p, err)
	}
	if o != nil {
		return driver.FileInfoFields{P: p, Sz: o.size, MT: o.modTime}, nil
	}
	prefix := d.dirPrefix(p)
	var newest time.Time
	found := false
	for b, err := range d.list(ctx, prefix) {
		if err != nil {
			return nil, wrap("stat", p, err)
		}
		if !driver.ValidPath("/" + strings.TrimPrefix(b.Rel, prefix)) {
			continue
		}
		found = true
		if b.ModTime.After(newest) {
			newest = b.ModTime
		}
		if b.page > 0 {
			break
		}
	}
	if !found {
		return nil, notFound(p)
	}
	return driver.FileInfoFields{P: p, MT: newest, Dir: true}, nil
}

// listed is a blob of a flat listing, with its full name in Rel.
type listed struct {
	keywalk.Object
	page int // the listing's page it came on, from 0
}

// list lists the committed blobs whose names start with prefix, in name
// order.
func (d *Driver) list(ctx context.Context, prefix string) iter.Seq2[listed, error] {
	return func(yield func(listed, error) bool) {
		pager := d.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
		for page := 0; pager.More(); page++ {
			resp, err := pager.NextPage(ctx)
			if err != nil {
				yield(listed{}, err)
				return
			}
			for _, b := range resp.Segment.BlobItems {
				l := listed{Object: keywalk.Object{Rel: deref(b.Name)}, page: page}
				if pr := b.Properties; pr != nil {
					l.Size, l.ModTime = deref(pr.ContentLength), deref(pr.LastModified)
				}
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// List implements driver.Driver with a hierarchical listing. Names that
// map to no valid path are left out.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if !driver.ValidDirPath(p) {
		return nil, invalid(p)
	}
	prefix := d.dirPrefix(p)
	var out []string
	add := func(name string) {
		if name = strings.TrimSuffix(strings.TrimPrefix(name, prefix), "/"); driver.ValidPath("/" + name) {
			out = append(out, keywalk.Join(p, name))
		}
	}
	pager := d.c.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{Prefix: &prefix})
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			return nil, wrap("list", p, err)
		}
		for _, b := range resp.Segment.BlobItems {
			add(deref(b.Name))
		}
		for _, bp := range resp.Segment.BlobPrefixes {
			add(deref(bp.Name))
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
		for b, err := range d.list(ctx, prefix) {
			if err != nil {
				yield(keywalk.Object{}, wrap("walk", p, err))
				return
			}
			b.Rel = strings.TrimPrefix(b.Rel, prefix)
			if !yield(b.Object, nil) {
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

// Move implements driver.Driver with a server-side copy (Copy Blob from a
// short-lived SAS URL of src, conditional on its ETag), waited for until
// it is done, then the deletion of src if it is still that version.
// Readers of dst see the old file or the new one; for a moment both src
// and dst exist.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if !driver.ValidPath(src) {
		return invalid(src)
	}
	if !driver.ValidPath(dst) {
		return invalid(dst)
	}
	o, err := d.props(ctx, d.key(src))
	if err != nil {
		return wrap("move", src, err)
	}
	if o == nil {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	if err := d.copyBlob(ctx, d.key(dst), d.key(src), o.etag); err != nil {
		if isNotFound(err) || httpStatus(err) == http.StatusPreconditionFailed {
			// The service could not read the source: gone or replaced,
			// unless it is still there as it was.
			if now, perr := d.props(ctx, d.key(src)); perr == nil && (now == nil || now.etag != o.etag) {
				return notFound(src)
			}
		}
		return wrap("move", src, err)
	}
	// dst is in place: finish even if the caller gives up now.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := d.deleteIf(ctx, d.key(src), o.etag); err != nil {
		return wrap("move", src, err)
	}
	return nil
}

// copyBlob copies version etag of blob srcKey to dstKey on the server and
// waits until the copy is done.
func (d *Driver) copyBlob(ctx context.Context, dstKey, srcKey string, etag azcore.ETag) error {
	srcURL, err := d.sasURL(srcKey, time.Hour)
	if err != nil {
		return err
	}
	dst := d.c.NewBlobClient(dstKey)
	resp, err := dst.StartCopyFromURL(ctx, srcURL, &blob.StartCopyFromURLOptions{
		SourceModifiedAccessConditions: &blob.SourceModifiedAccessConditions{SourceIfMatch: &etag},
	})
	if err != nil {
		return err
	}
	status, id := deref(resp.CopyStatus), deref(resp.CopyID)
	wait := 10 * time.Millisecond
	for status == blob.CopyStatusTypePending {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			// Leave no half-copied blob behind.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_, _ = dst.AbortCopyFromURL(actx, id, nil)
			cancel()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, copyPollMax)
		props, err := dst.GetProperties(ctx, nil)
		if err != nil {
			return err
		}
		if deref(props.CopyID) != id {
			return fmt.Errorf("copy to %s was replaced by another", dstKey)
		}
		status = deref(props.CopyStatus)
		if status != blob.CopyStatusTypePending && status != blob.CopyStatusTypeSuccess {
			return fmt.Errorf("copy to %s: %s: %s", dstKey, status, deref(props.CopyStatusDescription))
		}
	}
	if status != blob.CopyStatusTypeSuccess {
		return fmt.Errorf("copy to %s: %s", dstKey, status)
	}
	return nil
}

// deleteIf deletes blob key if its ETag is etag; a blob gone or replaced
// is no error.
func (d *Driver) deleteIf(ctx context.Context, key string, etag azcore.ETag) error {
	_, err := d.c.NewBlobClient(key).Delete(ctx, &blob.DeleteOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}},
	})
	if err != nil && !isNotFound(err) && httpStatus(err) != http.StatusPreconditionFailed {
		return err
	}
	return nil
}

// Delete implements driver.Driver: the blob at p, every blob below p and
// the pending state of writers of those paths are removed. It is
// ErrNotFound only if there was none of these.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	key := d.key(p)
	o, err := d.props(ctx, key)
	if err != nil {
		return wrap("delete", p, err)
	}
	pending, err := d.listPending(ctx, p)
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
	if o != nil {
		if _, err := d.c.NewBlobClient(key).Delete(ctx, nil); err != nil && !isNotFound(err) {
			return wrap("delete", p, err)
		}
	}
	if o == nil && n == 0 && len(pending) == 0 {
		return notFound(p)
	}
	return nil
}

// listKeys returns the names of the committed blobs that start with
// prefix.
func (d *Driver) listKeys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for b, err := range d.list(ctx, prefix) {
		if err != nil {
			return nil, err
		}
		keys = append(keys, b.Rel)
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
	return slices.DeleteFunc(keys, func(k string) bool { return k != pk && !strings.HasPrefix(k, pk+"/") }), nil
}

func (d *Driver) deletePrefix(ctx context.Context, prefix string) (int, error) {
	keys, err := d.listKeys(ctx, prefix)
	if err != nil {
		return 0, err
	}
	return len(keys), d.deleteKeys(ctx, keys)
}

// deleteKeys removes the blobs named keys, several at a time. Blobs
// already gone are no error.
func (d *Driver) deleteKeys(ctx context.Context, keys []string) error {
	return bulk.Each(ctx, keys, deleteConcurrency, func(ctx context.Context, k string) error {
		if _, err := d.c.NewBlobClient(k).Delete(ctx, nil); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	})
}

// sasURL is a read-only SAS URL of blob key, valid for expiry.
func (d *Driver) sasURL(key string, expiry time.Duration) (string, error) {
	start := time.Now().Add(-sasSkew)
	return d.c.NewBlobClient(key).GetSASURL(sas.BlobPermissions{Read: true}, time.Now().Add(expiry),
		&blob.GetSASURLOptions{StartTime: &start})
}

// RedirectURL implements driver.Redirector when Options.Redirect is set: a
// read-only SAS URL of the blob, valid for Options.RedirectExpiry. Other
// methods than GET get "", so the registry answers them itself.
func (d *Driver) RedirectURL(r *http.Request, p string) (string, error) {
	if !driver.ValidPath(p) {
		return "", invalid(p)
	}
	if !d.redirect || r.Method != http.MethodGet {
		return "", nil
	}
	u, err := d.sasURL(d.key(p), d.expiry)
	if err != nil {
		return "", wrap("sign", p, err)
	}
	return u, nil
}

// httpStatus is the HTTP status of the response that caused err, or 0.
func httpStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// isNotFound reports a missing blob. A HEAD answer has no body and so no
// error code; the container's existence is checked by New, so a 404 there
// means the blob.
func isNotFound(err error) bool {
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return true
	}
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return false
	}
	return httpStatus(err) == http.StatusNotFound
}
