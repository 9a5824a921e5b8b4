package sqlite

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/berthhq/berth/metadata"
)

var lockKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// TryLock takes the advisory lock named key (lower-case letters, digits,
// '.', '_' and '-'), a file beside the database like LockGC's, so that
// work of which one process at a time should do (a cache's scheduled
// sync) is done by one of the processes sharing the database. ok is
// false, with no error, when another holder has it.
func (s *Store) TryLock(ctx context.Context, key string) (release func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if !lockKeyRE.MatchString(key) {
		return nil, false, fmt.Errorf("metadata/sqlite: lock key %q: want lower-case letters, digits, '.', '_' or '-'", key)
	}
	release, err = lockFile(s.path + "-" + key + ".lock")
	if errors.Is(err, metadata.ErrGCLocked) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("metadata/sqlite: lock %s: %w", key, err)
	}
	return release, true, nil
}
