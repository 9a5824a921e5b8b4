package connector

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// streamChunks bounds the chunks a stream holds for its client: the fill
// never waits for a client longer than the upstream timeout, and a client
// never costs more than this many buffers.
const streamChunks = 16

// errClientDropped is the end of a stream whose client did not keep up.
var errClientDropped = errors.New("the client did not take the blob as fast as the upstream sent it")

// blobStream is the reader a cold blob is served through while a cache
// stores it: the fill writes what it reads from the upstream, and the
// reader yields it to the registry, all but the last byte. The last byte
// comes only with a successful finish, once the digest is verified and
// the blob committed: on a mismatch (or any failure) the reader ends with
// the error instead, and the client never has a complete body of bad
// content. A client that does not keep up is dropped; the fill goes on.
type blobStream struct {
	ch      chan []byte
	done    chan struct{} // closed by finish
	closed  chan struct{} // closed by Close
	err     error         // valid once done is closed
	timeout time.Duration

	// Writer side (the fill's goroutine).
	last  [1]byte
	have  bool
	timer *time.Timer
	dead  atomic.Bool

	// Reader side (the registry's goroutine).
	cur       []byte
	closeOnce sync.Once
}

func newBlobStream(timeout time.Duration) *blobStream {
	t := time.NewTimer(timeout)
	t.Stop()
	return &blobStream{ch: make(chan []byte, streamChunks), done: make(chan struct{}), closed: make(chan struct{}), timeout: timeout, timer: t}
}

// Write passes all but the last byte seen so far to the reader. It never
// fails: a reader that cannot keep up is dropped.
func (s *blobStream) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 || s.dead.Load() {
		return n, nil
	}
	chunk := make([]byte, 0, n)
	if s.have {
		chunk = append(chunk, s.last[0])
	}
	chunk = append(chunk, p[:n-1]...)
	s.last[0], s.have = p[n-1], true
	s.send(chunk)
	return n, nil
}

// send hands chunk to the reader, waiting at most the timeout.
func (s *blobStream) send(chunk []byte) {
	if len(chunk) == 0 || s.dead.Load() {
		return
	}
	select {
	case s.ch <- chunk:
		return
	default:
	}
	s.timer.Reset(s.timeout)
	defer s.timer.Stop()
	select {
	case s.ch <- chunk:
	case <-s.timer.C:
		s.dead.Store(true)
	case <-s.closed:
		s.dead.Store(true)
	}
}

// finish ends the stream: with err nil, the last byte follows and the
// reader ends at EOF; otherwise the reader ends with err.
func (s *blobStream) finish(err error) {
	if err == nil && s.have {
		s.send(s.last[:])
	}
	if err == nil && s.dead.Load() {
		err = errClientDropped
	}
	s.err = err
	close(s.done)
}

func (s *blobStream) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		select {
		case b := <-s.ch:
			s.cur = b
		case <-s.done:
			select {
			case b := <-s.ch:
				s.cur = b
				continue
			default:
			}
			if s.err != nil {
				return 0, s.err
			}
			return 0, io.EOF
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// Close lets the fill go on without this reader.
func (s *blobStream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}
