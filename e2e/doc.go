// Package e2e holds berth's end-to-end tests. They build the berth binary, run it as a real
// server on 127.0.0.1 and drive it with real clients: the OCI conformance suite, the Docker
// engine, skopeo, crane, oras and regctl, and plain HTTP for crash recovery.
//
// A missing dependency (a client binary, the Docker engine) makes a test skip, except when the
// environment variable CI is "true", where it fails: CI must not pass by skipping. E2E_BERTH_BIN
// names a prebuilt berth binary to test instead of building one.
package e2e
