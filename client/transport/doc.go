// Package transport is the HTTP layer of the berth client: a chain of http.RoundTrippers,
// outermost first,
//
//	NewUserAgent → NewHeaders → Auth (NewAuth) → NewRetry → HostTLS (per-host TLS) → the network
//
// plus what they are built on: parsers for WWW-Authenticate challenges and Link headers,
// token fetching (FetchToken), Ping (whose *PingResponseError tells a server that answered
// but is not a V2 registry from one that could not be reached), token scopes, and the
// registry's error documents
// (Error, CheckResponse) with the error categories ErrNotFound, ErrUnauthorized, ErrDenied
// and ErrDigestMismatch.
//
// Most programs use package client, which builds this chain for each registry; the pieces
// are exported for programs that speak to registries with their own requests.
package transport
