// Package parts buffers the bytes an object store driver's writer has not
// yet sent as a whole part (an S3 or GCS part, an Azure block), the same
// way for every driver: small content stays small, larger content takes
// a whole part's buffer from a pool shared by the driver's writers, and a
// part is sent from the caller's slice without a copy when it can be.
package parts

import "sync"

// smallBuffer is how far a buffer grows by doubling before it takes a
// whole part's buffer from the pool: small files stay small.
const smallBuffer = 1 << 20

// Pool recycles part buffers of Size bytes between a driver's writers.
type Pool struct {
	Size int64
	p    sync.Pool
}

// Buffer holds the bytes after a writer's last full part: always shorter
// than a part. The zero value is empty.
type Buffer struct {
	B      []byte
	pooled bool // B came from a Pool
}

// Write takes p in parts of size bytes: each part it completes goes to
// send, straight from p when the buffer is empty and p holds a whole
// part. n counts the bytes taken, that is, sent in a part or kept in the
// buffer; the bytes of a part send refused are not taken.
func (b *Buffer) Write(p []byte, size int64, pool *Pool, send func([]byte) error) (n int, err error) {
	for len(p) > 0 {
		if len(b.B) == 0 && int64(len(p)) >= size {
			if err := send(p[:size]); err != nil {
				return n, err
			}
			p = p[size:]
			n += int(size)
			continue
		}
		take := min(int(size)-len(b.B), len(p))
		b.Grow(take, size, pool)
		b.B = append(b.B, p[:take]...)
		if int64(len(b.B)) == size {
			if err := send(b.B); err != nil {
				b.B = b.B[:len(b.B)-take]
				return n, err
			}
			b.B = b.B[:0]
		}
		p = p[take:]
		n += take
	}
	return n, nil
}

// Grow makes room for n more bytes in B, for parts of size bytes. Small
// content grows by doubling; beyond smallBuffer B becomes a whole part's
// buffer (from pool when its buffers are of that size), which never needs
// to grow again since B stays shorter than a part.
func (b *Buffer) Grow(n int, size int64, pool *Pool) {
	need := len(b.B) + n
	if need <= cap(b.B) {
		return
	}
	var nb []byte
	switch {
	case need <= smallBuffer:
		nb = make([]byte, 0, min(max(need, 2*cap(b.B), 4096), smallBuffer))
	case pool != nil && size == pool.Size:
		if pb, ok := pool.p.Get().(*[]byte); ok {
			nb = (*pb)[:0]
		} else {
			nb = make([]byte, 0, size)
		}
		b.pooled = true
	default:
		nb = make([]byte, 0, size)
	}
	b.B = append(nb, b.B...)
}

// Release empties the buffer, returning a part buffer to pool.
func (b *Buffer) Release(pool *Pool) {
	if b.pooled {
		pb := b.B[:0]
		pool.p.Put(&pb)
		b.pooled = false
	}
	b.B = nil
}
