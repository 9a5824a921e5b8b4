package notifications

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/opencontainers/go-digest"
)

// MediaType is the Content-Type of a notification request: the envelope
// of distribution's registry, so its consumers read berth's events as
// they are.
const MediaType = "application/vnd.docker.distribution.events.v1+json"

// SignatureHeader carries the signature of a body when the endpoint has a
// secret: "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Berth-Signature"

// Envelope is the body of a notification request.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one thing that happened in the registry, in the format of
// distribution's notifications.
type Event struct {
	// ID is unique per event; a delivery that is repeated (the endpoint
	// answered but berth could not record it) carries the same ID, so a
	// consumer can drop duplicates.
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	// Action is push, pull, delete or mount.
	Action  string  `json:"action"`
	Target  Target  `json:"target"`
	Request Request `json:"request"`
	Actor   Actor   `json:"actor"`
	Source  Source  `json:"source"`
}

// Target is what the event is about.
type Target struct {
	MediaType string        `json:"mediaType,omitempty"`
	Size      int64         `json:"size,omitempty"`
	Digest    digest.Digest `json:"digest,omitempty"`
	// Length is Size, as older consumers read it.
	Length     int64  `json:"length,omitempty"`
	Repository string `json:"repository,omitempty"`
	// FromRepository is the source of a mount.
	FromRepository string `json:"fromRepository,omitempty"`
	// URL is where the content is served.
	URL string `json:"url,omitempty"`
	Tag string `json:"tag,omitempty"`
}

// Request is the request that caused the event.
type Request struct {
	ID string `json:"id"`
	// Addr is the client's address.
	Addr string `json:"addr,omitempty"`
	// Host is the Host the client addressed.
	Host      string `json:"host,omitempty"`
	Method    string `json:"method"`
	UserAgent string `json:"useragent"`
}

// Actor is who made the request.
type Actor struct {
	// Name is the authenticated user; empty for anonymous requests.
	Name string `json:"name,omitempty"`
}

// Source is the berth process that saw the event.
type Source struct {
	// Addr is its host name and port.
	Addr string `json:"addr,omitempty"`
	// InstanceID changes with every start.
	InstanceID string `json:"instanceID,omitempty"`
}

// envelope joins encoded events into a body. It fails only for a payload
// that is not JSON (a queue row altered by hand).
func envelope(payloads [][]byte) ([]byte, error) {
	raw := make([]json.RawMessage, len(payloads))
	for i, p := range payloads {
		raw[i] = p
	}
	return json.Marshal(struct {
		Events []json.RawMessage `json:"events"`
	}{raw})
}

// Sign returns the value of SignatureHeader for body with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header (the value of SignatureHeader) signs body
// with secret, comparing in constant time: what a consumer does.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}
