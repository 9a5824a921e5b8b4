package e2e

import "testing"

// TestReplicasOCIConformance runs the OCI conformance suite, every optional API on, against
// berth with blobs in S3 (MinIO) and metadata in PostgreSQL, and accepts nothing short of all
// passed.
func TestReplicasOCIConformance(t *testing.T) {
	t.Parallel()
	script := requireConformance(t)
	srvs, _ := startReplicas(t, 1, newSharedBackend(t).configFile(t))
	runConformance(t, script, srvs[0].Addr, "on MinIO and PostgreSQL")
}
