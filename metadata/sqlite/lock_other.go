//go:build !unix

package sqlite

import (
	"sync"

	"github.com/berthhq/berth/metadata"
)

// heldLocks are the lock files held in this process. Without flock(2) the
// lock only excludes collections within one process; berth on such systems
// should run one process per database.
var heldLocks sync.Map

// lockFile marks path as held in this process, or fails with
// metadata.ErrGCLocked if it is.
func lockFile(path string) (func(), error) {
	if _, loaded := heldLocks.LoadOrStore(path, struct{}{}); loaded {
		return nil, metadata.ErrGCLocked
	}
	return func() { heldLocks.Delete(path) }, nil
}
