//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"

	"github.com/berthhq/berth/metadata"
)

// lockFile takes an exclusive flock(2) on the file at path, creating it, or
// fails with metadata.ErrGCLocked if another open file description holds
// it: another process, or another store of this process (each LockGC opens
// the file anew, so the lock excludes holders within one process too). The
// kernel drops the lock when its holder dies.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, metadata.ErrGCLocked
		}
		return nil, err
	}
	return func() {
		// Closing the last descriptor of the file releases the lock.
		f.Close()
	}, nil
}
