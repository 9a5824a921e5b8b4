package parts

import (
	"bytes"
	"errors"
	"testing"
)

func TestWriteCutsParts(t *testing.T) {
	const size = 4
	pool := &Pool{Size: size}
	var b Buffer
	var sent [][]byte
	send := func(p []byte) error { sent = append(sent, bytes.Clone(p)); return nil }
	for _, p := range []string{"ab", "cdefghij", "k"} {
		n, err := b.Write([]byte(p), size, pool, send)
		if err != nil || n != len(p) {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if got := bytes.Join(sent, []byte("|")); string(got) != "abcd|efgh" || string(b.B) != "ijk" {
		t.Errorf("sent %q, kept %q; want abcd|efgh and ijk", got, b.B)
	}
	// A whole part from an empty buffer goes without a copy.
	b.Release(pool)
	whole := []byte("wxyz")
	var from []byte
	if _, err := b.Write(whole, size, pool, func(p []byte) error { from = p; return nil }); err != nil || &from[0] != &whole[0] {
		t.Errorf("a whole part was copied (err %v)", err)
	}
}

func TestWriteRefusedPartIsNotTaken(t *testing.T) {
	const size = 4
	var b Buffer
	refused := errors.New("refused")
	if _, err := b.Write([]byte("ab"), size, nil, nil); err != nil {
		t.Fatal(err)
	}
	n, err := b.Write([]byte("cdef"), size, nil, func([]byte) error { return refused })
	if !errors.Is(err, refused) || n != 0 || string(b.B) != "ab" {
		t.Errorf("Write = %d, %v, kept %q; want 0, the send error, ab", n, err, b.B)
	}
}

func TestGrowTakesPoolBuffersOnlyOfItsSize(t *testing.T) {
	pool := &Pool{Size: 2 * smallBuffer}
	var b Buffer
	b.Grow(16, pool.Size, pool)
	if b.pooled || cap(b.B) >= smallBuffer {
		t.Fatalf("small content took a part buffer (cap %d)", cap(b.B))
	}
	b.Grow(smallBuffer+1, pool.Size, pool)
	if !b.pooled || int64(cap(b.B)) != pool.Size {
		t.Fatalf("large content: pooled %v, cap %d", b.pooled, cap(b.B))
	}
	b.Release(pool)
	b.Grow(smallBuffer+1, 3*smallBuffer, pool)
	if b.pooled || cap(b.B) != 3*smallBuffer {
		t.Errorf("another part size used the pool (pooled %v, cap %d)", b.pooled, cap(b.B))
	}
}
