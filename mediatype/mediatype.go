// Package mediatype is the one vocabulary of manifest media types that the
// registry, the connectors and the client share: the OCI types come from
// image-spec, the Docker schema 2 ones are spelled here once, with the
// Accept list every manifest request sends and the manifest size limit.
package mediatype

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types.
const (
	OCIManifest        = ocispec.MediaTypeImageManifest
	OCIIndex           = ocispec.MediaTypeImageIndex
	DockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// DockerSchema1 and DockerSchema1Signed are the legacy types berth
	// refuses.
	DockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	DockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	// DockerForeignLayer is a layer fetched from its URLs, never pushed.
	DockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// OCIEmpty is the empty JSON config of artifacts.
	OCIEmpty = ocispec.MediaTypeEmptyJSON
)

// MaxManifestSize is the default bound on a manifest's size, in bytes:
// what the registry accepts unless configured otherwise, and what the
// connectors and the client read.
const MaxManifestSize = 4 << 20

// Manifests lists the media types of every manifest berth stores, indexes
// first.
var Manifests = []string{OCIIndex, OCIManifest, DockerManifestList, DockerManifest}

// ManifestAccept is the Accept header of manifest requests: every type
// berth stores, so that indexes are fetched as they are.
var ManifestAccept = strings.Join(Manifests, ", ")

// IsIndex reports whether mt is an index (OCI index or Docker manifest
// list).
func IsIndex(mt string) bool { return mt == OCIIndex || mt == DockerManifestList }

// IsImage reports whether mt is an image manifest (OCI or Docker schema 2).
func IsImage(mt string) bool { return mt == OCIManifest || mt == DockerManifest }

// IsManifest reports whether mt is a manifest type berth stores.
func IsManifest(mt string) bool { return IsIndex(mt) || IsImage(mt) }
