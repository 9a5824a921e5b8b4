//go:build !linux

package filesystem

import "os"

// startWriteback is a no-op where sync_file_range does not exist: Commit's
// fsync writes everything.
func startWriteback(*os.File, int64, int64) {}

// waitWriteback is a no-op where sync_file_range does not exist.
func waitWriteback(*os.File, int64, int64) {}
