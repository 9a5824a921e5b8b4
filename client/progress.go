package client

// ProgressKind is what happened to a blob or manifest.
type ProgressKind int

// Progress kinds, in the order a blob goes through them.
const (
	// BlobStarted: the blob's transfer began.
	BlobStarted ProgressKind = iota + 1
	// BlobProgress: Transferred bytes of the blob have gone through so far.
	BlobProgress
	// BlobDone: the blob was transferred and verified.
	BlobDone
	// BlobExists: the destination already had the blob; nothing was transferred.
	BlobExists
	// BlobMounted: the destination registry mounted the blob from the source repository.
	BlobMounted
	// ManifestDone: a manifest (an image's, or an index's once its children were written)
	// was written to the destination.
	ManifestDone
)

// String names the kind.
func (k ProgressKind) String() string {
	switch k {
	case BlobStarted:
		return "started"
	case BlobProgress:
		return "progress"
	case BlobDone:
		return "done"
	case BlobExists:
		return "exists"
	case BlobMounted:
		return "mounted"
	case ManifestDone:
		return "manifest"
	}
	return "unknown"
}

// ProgressEvent reports on one blob (or manifest) of a copy, pull or push.
type ProgressEvent struct {
	Kind ProgressKind
	// Descriptor of the blob or manifest; Descriptor.Size is the total.
	Descriptor Descriptor
	// Transferred is the number of bytes moved so far (the whole size once done).
	Transferred int64
}

// ProgressFunc receives progress events. Blobs move concurrently, so it is called from
// several goroutines at once and must be safe for that; it should return quickly.
type ProgressFunc func(ProgressEvent)

func (f ProgressFunc) emit(kind ProgressKind, d Descriptor, n int64) {
	if f != nil {
		f(ProgressEvent{Kind: kind, Descriptor: d, Transferred: n})
	}
}
