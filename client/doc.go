// Package client is berth's public registry client: the primitives Docker's daemon uses to
// talk to registries (references, mirrors and insecure registries, per-host TLS,
// credentials, authentication), and the operations built on them, push, pull and copy.
//
// # Pieces
//
//   - References: ParseReference normalises as Docker does ("ubuntu" is
//     docker.io/library/ubuntu:latest).
//   - Configuration: package service (mirrors, insecure registries, registries allowed
//     non-distributable layers, certificates directory, index name validation,
//     ResolveRepository and ResolveIndexInfo, LookupPullEndpoints and
//     LookupPushEndpoints), replaced atomically with Service.Reload.
//   - Credentials: package credentials (the Docker config file and credential helpers).
//   - HTTP: package transport, a chain of RoundTrippers (user agent → auth → retry →
//     per-host TLS) that a Client builds for each registry.
//
// # Operations
//
// A Client is made once with New and shared. Its methods take a context and a Reference:
//
//	GetManifest, HeadManifest, PutManifest, DeleteManifest, Resolve
//	GetBlob, HeadBlob, PushBlob, MountBlob, DeleteBlob
//	StartUpload, ResumeUpload (Upload: WriteChunk, Status, Commit, Cancel)
//	Tags, TagPages, Catalog, CatalogPages, Referrers, Search, SearchWithOptions
//	ReferencingIndexes (the tagged indexes a manifest deletion would break)
//	Copy (registry to registry), Pull (registry to an OCI layout), Push (layout to registry)
//	Ping, Login
//
// Non-distributable (foreign) layers are copied only to registries the service
// configuration allows (AllowNondistributableArtifacts); elsewhere they stay referenced by
// their URLs. Platforms are parsed and matched as containerd does (ParsePlatform,
// PlatformMatches).
//
// Everything downloaded is verified against its digest; a mismatch is an error matching
// ErrDigestMismatch, and nothing of the content is returned or stored as good.
//
// # Errors
//
// Failed operations return an *Error naming the operation, the reference and the cause.
// errors.Is tells the categories: ErrNotFound, ErrUnauthorized, ErrDenied,
// ErrDigestMismatch, ErrInvalidReference, ErrUnsupported, ErrReferenced,
// ErrScanIncomplete; errors.As finds the registry's own answer as a *RegistryError, and
// IsNotRegistry tells an address that answered but is no V2 registry (a
// *PingResponseError) from one that could not be reached.
//
// # Progress
//
// CopyOptions.Progress receives a ProgressEvent per blob state change and per chunk of
// bytes moved, for progress bars drawn by the caller.
package client
