// Package connector serves repository names from pull-through caches and
// virtual registries, as sources behind berth's registry.
//
// # Model
//
// A Connector is the registry's Resolver (registry.Resolver). Every
// repository name belongs to one configured registry, the one with the
// longest matching prefix (Config), or to the implicit hosted registry
// when none matches, and Resolve returns the registry.Repository that
// serves it:
//
//   - hosted: registry.HostedRepository, content pushed to berth.
//   - cache: a cacheRepo of a cache, an upstream registry. Content fetched
//     from it is stored in the same metadata and storage as hosted content,
//     under the local name (hub/library/alpine), so cache hits are served
//     like hosted content and cached repositories appear in the catalog.
//   - virtual: a virtualRepo, an ordered list of hosted and cache members.
//     Reads try the members in order; writes go to the hosted push target
//     (Repository.Target), under the member's name.
//
// The registry routes, authorises (once, on the name it serves) and
// answers every request; this package never writes HTTP. It returns
// content in Go types and failures as *registry.Error values naming the
// upstream and the cause (wireError).
//
// # Caching
//
// Manifests by digest and blobs never change: once fetched and verified
// they are served locally. A tag is revalidated with a HEAD to the
// upstream once its TTL has passed (kept in memory: after a restart each
// cached tag is revalidated once); only a changed digest triggers a fetch.
// Manifests are verified against the digest they were asked by, or the
// one the upstream announced, and stored with the metadata Writer; the
// blobs they reference are fetched when a client asks for them.
//
// A cold blob is fetched once for all concurrent requests of the same
// repository and digest (the cache's flights). The first request gets a
// blobStream, a reader the registry serves like any other, fed while
// storage.Store.Put writes and hashes the bytes in the background; it
// holds back the last byte until the digest is verified and the blob
// committed, so that on a mismatch the client sees a broken response and
// nothing is cached. The other requests wait and are then served from
// storage.
//
// When the upstream is unreachable, slow or rate-limiting, cached tags are
// served stale (the registry adds a Warning header); what was never
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
// registry-mirrors target of the Docker daemon. A request carrying
// containerd's ?ns=HOST is served under the prefix of the cache whose
// mirrorOf lists HOST (Connector.Mirror): the registry rewrites the name
// before it authorises the request.
//
// # Health
//
// Each cache's upstream is probed in the background (GET /v2/); requests
// update the state too. The registry serves Connector.Health at
// registry.HealthPath, and changes are logged.
package connector
