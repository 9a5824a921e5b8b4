// Package ui is berth's web UI, served by berth itself under /ui/: the
// registries and the health of their upstreams, the repositories (a
// listing and a search over hosted, cached and upstream names), each
// repository's tags, each manifest with its platforms, layers, config and
// referrers (signatures, SBOMs, attestations), and, for administrators,
// garbage collection runs and the storage each repository holds.
//
// Pages are rendered on the server with html/template (every name, tag,
// label and annotation is escaped as text) and read without JavaScript;
// a small script of our own adds search as you type and copy buttons.
// Assets are embedded in the binary. Every answer carries a
// Content-Security-Policy that allows no inline script, and pages are
// never cached.
//
// The UI reads content only as the registry serves it: repositories from
// the registry's Resolver, listings' details from the metadata Reader,
// blobs through the registry (registry.Registry.OpenBlob). It writes
// nothing itself: a delete is sent to the registry's own handler as the
// signed-in person, so the registry authorises it and applies its rules
// (a manifest an index lists is refused with MANIFEST_REFERENCED).
//
// People are the registry's own users: the sign-in form checks passwords
// through the auth Gate, with the same failed-login limits as the API,
// and what a person may see and do is what the same rules let the API
// do (pull on a repository to see it, the catalog right to list). A
// signed-in person holds a session cookie signed with an HMAC key
// (HttpOnly, SameSite=Strict, Secure over TLS) that ends when the password
// changes; every form carries a CSRF token bound to the session.
package ui
