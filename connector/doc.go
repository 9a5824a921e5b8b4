// Package connector puts pull-through caches and virtual registries in
// front of berth's registry.
//
// # Model
//
// Every repository name belongs to one configured registry, the one with
// the longest matching prefix (Config), or to the implicit hosted registry
// when none matches:
//
//   - hosted: content pushed to berth; requests pass through unchanged.
//   - cache: an upstream registry. Content fetched from it is stored in the
//     same metadata and storage as hosted content, under the local name
//     (hub/library/alpine), so the registry serves cache hits unchanged
//     and cached repositories appear in the catalog.
//   - virtual: an ordered list of hosted and cache members. Reads try the
//     members in order; writes go to the hosted push target, and the
//     Location headers of the answers name the virtual repository.
//
// # Caching
//
// Manifests by digest and blobs never change: once fetched and verified
// they are served locally. A tag is revalidated with a HEAD to the
// upstream once its TTL has passed (kept in memory: after a restart each
// cached tag is revalidated once); only a changed digest triggers a fetch.
// Manifests are verified against the digest they were asked by, or the
// one the upstream announced, and stored with metadata.Store.PutManifest;
// the blobs they reference are fetched when a client asks for them.
//
// A cold blob is fetched once for all concurrent requests of the same
// repository and digest. The first request's client receives the bytes
// while storage.Store.Put writes and hashes them; the last byte is held
// back until the digest is verified and the blob committed, so that on a
// mismatch the client sees a broken response and nothing is cached. The
// other requests wait and are then served from storage.
//
// When the upstream is unreachable, slow or rate-limiting, cached tags are
// served with a Warning header (110 "Response is Stale"); what was never
// fetched fails with UNAVAILABLE (503), TOOMANYREQUESTS (429, with the
// upstream's Retry-After) or, for wrong answers, UNAVAILABLE with 502,
// each naming the upstream and the cause. "Not found" answers are
// remembered briefly.
//
// # Upstream access
//
// Upstream requests go through the client library's transport chain
// (package client/transport): Basic credentials, the Bearer token flow
// with tokens cached per scope, retries honouring Retry-After.
//
// # Mirrors
//
// A cache may be mounted at the root (prefix ""), so that berth is a
// registry-mirrors target of the Docker daemon. Requests carrying
// containerd's ?ns=HOST go to the cache whose mirrorOf lists HOST, under
// its prefix, so one berth mirrors several upstreams.
//
// # Health
//
// Each cache's upstream is probed in the background (GET /v2/); requests
// update the state too. HealthPath serves the states as JSON, and changes
// are logged.
//
// # Authorization
//
// The connector authorizes the requests it acts on with the registry's
// Authorize hook, for the name the client used, and forwards them to the
// registry marked with registry.Authorized; hosted requests are left to
// the registry.
package connector
