package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// ErrBodyStalled: the request body sent nothing for the idle timeout.
// Errors of a stalled body wrap it.
var ErrBodyStalled = errors.New("request body stalled")

// errBodyAborted: the body was stopped by Abort (its upload session was
// cancelled).
var errBodyAborted = errors.New("request body abandoned: the upload session was cancelled")

// stallError is ErrBodyStalled with the timeout.
type stallError struct{ timeout time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("request body stalled: nothing received for %v", e.timeout)
}

// Is makes errors.Is(err, ErrBodyStalled) hold.
func (e *stallError) Is(target error) bool { return target == ErrBodyStalled }

// idleBody ends a request body that sends nothing for timeout: before
// each read it moves the connection's read deadline timeout ahead, so a
// slow but moving body goes on, and a stalled one fails with
// ErrBodyStalled instead of holding its handler (and an upload session)
// for as long as the client likes.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	// armed: a deadline was set; eof: the body was read to its end;
	// failed: it stalled or was aborted. Only the handler's goroutine
	// touches them.
	armed, eof, failed bool
	aborted            atomic.Bool
}

// limitBody wraps r's body in an idleBody when timeout is set. The
// returned function, run when the handler is done, puts the original body
// back for the server. Unless the body was read to its end
// (the deadline was cleared then, so that the server's own read of the
// idle connection cannot time out while a long handler runs), it closes
// the original body with the read deadline past: the server then closes
// the connection after the answer instead of waiting, without a bound, to
// read and discard the rest of a body the client may never send.
func limitBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) func() {
	if timeout <= 0 || r.Body == nil || r.Body == http.NoBody {
		return func() {}
	}
	orig := r.Body
	b := &idleBody{ReadCloser: orig, rc: http.NewResponseController(w), timeout: timeout}
	r.Body = b
	return func() {
		r.Body = orig
		if b.eof {
			return
		}
		if !b.failed {
			_ = b.rc.SetReadDeadline(time.Now())
		}
		_ = orig.Close()
	}
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.failed || b.eof {
		return b.ReadCloser.Read(p)
	}
	if !b.aborted.Load() {
		if err := b.rc.SetReadDeadline(time.Now().Add(b.timeout)); err == nil {
			b.armed = true
		}
		// An Abort that ran meanwhile may have had its deadline
		// replaced by the one above: restore it.
		if b.aborted.Load() {
			_ = b.rc.SetReadDeadline(time.Now())
		}
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		if b.armed {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.failed = true
		if b.aborted.Load() {
			err = errBodyAborted
		} else {
			err = &stallError{b.timeout}
		}
	}
	return n, err
}

// Abort stops the body: a read in progress or to come fails at once. It is
// how cancelling an upload session ends a request still writing into it
// (storage.Aborter).
func (b *idleBody) Abort() {
	b.aborted.Store(true)
	_ = b.rc.SetReadDeadline(time.Now())
}
