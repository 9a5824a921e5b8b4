package bench

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"math/rand/v2"
	"syscall"

	"github.com/opencontainers/go-digest"
)

// fillRandom fills b with pseudo-random bytes from seed: incompressible
// content, the same for the same seed.
func fillRandom(b []byte, seed uint64) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rng := rand.NewChaCha8(key)
	_, _ = rng.Read(b)
}

// syncAll flushes every dirty page of the machine, so that writes of one
// run are not flushed during the next one.
func syncAll() { syscall.Sync() }

// blob is pseudo-random content whose last eight bytes are a counter, so
// that each push sends a blob neither server has seen, and whose digest is
// cheap to recompute: the hash state of everything before the counter is
// kept.
type blob struct {
	Data   []byte
	prefix []byte // marshalled sha256 state of Data[:len(Data)-8]
	salt   uint64
	n      uint64
}

// newBlob wraps data (at least 8 bytes) as a blob; salt keeps the counters
// of different runs apart.
func newBlob(data []byte, salt uint64) *blob {
	h := sha256.New()
	h.Write(data[:len(data)-8])
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // crypto/sha256 always marshals
	}
	return &blob{Data: data, prefix: state, salt: salt}
}

// Next rewrites the counter and returns the new content's digest.
func (b *blob) Next() digest.Digest {
	b.n++
	tail := b.Data[len(b.Data)-8:]
	binary.BigEndian.PutUint64(tail, b.salt^b.n)
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b.prefix); err != nil {
		panic(err) // the state came from MarshalBinary
	}
	h.Write(tail)
	return digest.NewDigest(digest.SHA256, h)
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }
