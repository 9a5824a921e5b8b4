package bench

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Limits are the machine's own speeds, measured in the same run as the
// workloads, that bound what a registry can do on it.
type Limits struct {
	// SHA256 is crypto/sha256 on one core over an in-memory buffer, MiB/s.
	SHA256 float64
	// DiskBuffered is a sequential write of DiskBytes into the page cache
	// (write calls only), MiB/s.
	DiskBuffered float64
	// DiskDurable is the same write followed by fsync, timed to the end of
	// the fsync, MiB/s. Both registries fsync a blob before acknowledging
	// it, so this is the rate the upload fraction is taken against.
	DiskDurable float64
	DiskBytes   int64
}

// UploadBound is min(one-core SHA-256, durable disk write): a single
// upload must hash every byte and make it durable.
func (l Limits) UploadBound() float64 { return min(l.SHA256, l.DiskDurable) }

// MeasureSHA256 hashes an in-memory buffer on one goroutine locked to its
// thread in five runs taking d in all and returns the best rate: on a
// shared machine the slower runs measure the other work, not the core.
func MeasureSHA256(d time.Duration) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 4*MiB)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var rates []float64
	for range 5 {
		h := sha256.New()
		var n int64
		start := time.Now()
		for time.Since(start) < d/5 {
			h.Write(buf)
			n += int64(len(buf))
		}
		rates = append(rates, Rate(n, time.Since(start)))
	}
	return Max(rates)
}

// MeasureDisk writes size bytes sequentially to a new file in dir in 1 MiB
// writes, then fsyncs it, and removes it. It returns the rate of the writes
// alone and the rate including the fsync.
func MeasureDisk(dir string, size int64) (buffered, durable float64, err error) {
	f, err := os.CreateTemp(dir, "disk-*.bin")
	if err != nil {
		return 0, 0, err
	}
	name := f.Name()
	defer os.Remove(name)
	defer f.Close()
	buf := make([]byte, MiB)
	fillRandom(buf, 1)
	start := time.Now()
	for n := int64(0); n < size; n += int64(len(buf)) {
		// Vary each block so nothing below could deduplicate it.
		buf[0], buf[1] = byte(n>>20), byte(n>>28)
		if _, err := f.Write(buf); err != nil {
			return 0, 0, fmt.Errorf("disk write: %w", err)
		}
	}
	written := time.Since(start)
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("disk fsync: %w", err)
	}
	synced := time.Since(start)
	return Rate(size, written), Rate(size, synced), nil
}

// MeasureLimits measures SHA-256 and the disk below dir.
func MeasureLimits(dir string, diskBytes int64) (Limits, error) {
	l := Limits{DiskBytes: diskBytes}
	l.SHA256 = MeasureSHA256(1500 * time.Millisecond)
	// Start from clean page cache state for the disk: flush what earlier
	// work left dirty so it is not counted here.
	syncAll()
	var err error
	l.DiskBuffered, l.DiskDurable, err = MeasureDisk(filepath.Clean(dir), diskBytes)
	return l, err
}
