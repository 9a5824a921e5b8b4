// Package gc is berth's online garbage collection and retention: it
// removes the manifests, blob links and blob bytes that nothing keeps,
// while pushes and pulls go on.
//
// # What is kept
//
// Reachability is decided per repository:
//
//   - A manifest is live if a tag points at it; or it is a child (at any
//     depth) of a live index; or its subject is a live manifest (a
//     signature, SBOM or other referrer of a live image); or it is
//     untagged and not yet eligible under the untagged policy. By default
//     untagged manifests are kept forever; a retention rule with
//     untaggedAfter makes those pushed longer ago than that eligible.
//   - A blob link (the right of a repository to serve a blob) is live if
//     a live manifest of the repository references the blob (config or
//     layer), or if it was made less than the grace period ago: a blob is
//     pushed before the manifest that needs it, and mounting or pushing
//     it again renews the link.
//   - Blob bytes are deleted when no repository links the blob any more
//     and they were written more than the grace period ago (a blob being
//     uploaded now is not linked yet).
//
// Tags removed by retention (keepLast, keepTags) are removed from
// metadata; their manifests then follow the untagged policy. Deleting a
// tag or a manifest through the API removes only that; the blobs go at the
// next collection.
//
// # Retention rules
//
// Rules name repositories by glob ('*' within one path component, '**'
// across components); the first rule matching a repository applies, and a
// repository no rule matches keeps every tag and every untagged manifest (so
// a rule that sets neither keepLast nor untaggedAfter exempts its
// repositories from the rules after it). keepLast N keeps the N tags pushed most recently (a push of a tag, even
// to the digest it already had, counts) and removes the others, except
// those matching one of the keepTags regular expressions, which are kept
// whatever their age and do not count against N. untaggedAfter makes
// untagged manifests eligible once they were first pushed that long ago.
//
// # Why concurrent pushes are safe
//
// A collection runs in three phases, none of which stops the registry:
//
//  1. Per repository, plan on a read snapshot; if there is anything to
//     remove, plan again and remove in one transaction that excludes every
//     other write to that repository (metadata.Collector). A plan is never
//     applied to a state it did not see, so a tag or manifest pushed
//     during the collection is always seen, or waits until the
//     collection of that repository is over.
//  2. Walk the stored blobs. For each one written before the grace period
//     that no repository still linked at the end of its phase 1, delete
//     the bytes inside a transaction that holds the blob locked against
//     links and checks again that nothing links it (DeleteUnlinkedBlob).
//  3. Forget tombstones older than the tombstone period.
//
// The races this closes:
//
//  1. A blob uploaded or mounted while its bytes are being deleted. An
//     upload rewrites the bytes (fresh bytes are inside the grace period),
//     but its link can come later than the grace, and a mount writes no
//     bytes at all. Guard makes every link of a blob that no
//     repository links check, under the same lock as the deletion, that
//     the bytes are still there; if they are not, the link fails with
//     metadata.ErrCollected and the client pushes the blob again. A link
//     made before the deletion takes the lock makes the deletion skip the
//     blob. The registry must be given the guarded store (Guard).
//  2. A manifest pushed referencing a blob (or child manifest) that the
//     collection removes from that repository: the push's own
//     transaction either commits first, and the collection sees the
//     reference and keeps the blob, or comes after, and finds the
//     tombstone the collection left and fails with metadata.ErrCollected
//     instead of storing an image with a hole. This also covers a client
//     that checked a blob (HEAD) long before pushing the manifest, up to
//     the tombstone period.
//  3. Two collections at once: Run takes a lock in the metadata database
//     (an advisory lock in PostgreSQL, so one replica collects at a time;
//     an flock(2) on a file beside the SQLite database, which also
//     excludes a `berth gc` run against a serving berth). The lock saves
//     work; the steps above stay correct without it.
//
// # Clocks
//
// Link, tag and tombstone times are stamped by the store: by the clock of
// the berth process with SQLite, by the database server's with
// PostgreSQL. Collections compare them with their own clock (Options.Now),
// so replicas' clocks must agree to well within the grace period. Tests
// move Options.Now forward instead of waiting.
//
// # Running it
//
// Run collects once (with Options.DryRun it only reports what it would
// remove). A Scheduler runs it every interval, give or take a tenth, from
// the last complete collection recorded in the database by any replica,
// and skips a turn while another replica holds the lock. `berth gc
// [--dry-run] [-v]` runs it from the command line with serve's
// configuration.
package gc
