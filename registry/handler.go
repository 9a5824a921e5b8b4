package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// APIVersionHeader and APIVersion are the header every answer carries, as
// the Docker Registry HTTP API V2 asks.
const (
	APIVersionHeader = "Docker-Distribution-API-Version"
	APIVersion       = "registry/2.0"
)

// RequestIDHeader carries the id of a request, in its answer and in the
// access log.
const RequestIDHeader = "X-Request-Id"

// HandlerOptions tune Handler.
type HandlerOptions struct {
	// Logger receives the access log: info for answers below 500, error
	// for the others, debug for the probes.
	Logger *slog.Logger
	// BodyIdleTimeout ends a request whose body sends nothing for this
	// long (0: no limit). A slow but moving body is not affected.
	BodyIdleTimeout time.Duration
	// Metrics, when set, is told of every request once its answer is out.
	Metrics Metrics
	// Uploads, when set, tracks the requests writing into uploads.
	Uploads *Uploads
	// Probes, when set, answers HealthzPath and ReadyzPath before anything
	// else (no authentication), its access-log lines at debug level, so
	// that probes every few seconds do not fill the log.
	Probes http.Handler
	// Wrap, when set, wraps the handler of each request (tracing); it is
	// called once, by Handler.
	Wrap func(http.Handler) http.Handler
}

// requestInfo is what the layers below Handler tell it about a request.
type requestInfo struct {
	id     string
	user   string
	family string // route family (Family), once known
	repo   string // the repository addressed, once known
	// uploads, when set, is where a request writing into an upload
	// registers (routed).
	uploads *Uploads
}

type requestInfoKey struct{}

// SetUser records the user a request authenticated as, for the access log.
// The authentication layer calls it once it knows.
func SetUser(ctx context.Context, user string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.user = user
	}
}

// RequestID returns the id Handler gave the request of ctx, or "".
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info.id
	}
	return ""
}

// Handler is the outermost layer of the server: every answer, the token
// service's and the registry's alike, carries the API version header and
// the request's id, every request body is read under the idle timeout,
// and every request leaves exactly one access-log line with the user, the
// id, the user agent, the status, the bytes sent and the duration, and
// one observation in the metrics. The probes (HealthzPath, ReadyzPath)
// are answered here, before authentication.
func Handler(next http.Handler, opts HandlerOptions) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Wrap != nil {
		next = opts.Wrap(next)
	}
	probes := opts.Probes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: requestID(r), uploads: opts.Uploads}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		h := w.Header()
		h.Set(APIVersionHeader, APIVersion)
		h.Set(RequestIDHeader, info.id)
		sw := &statusWriter{ResponseWriter: w}
		done := limitBody(sw, r, opts.BodyIdleTimeout)
		var in *countBody
		if opts.Metrics != nil {
			in = countRequestBody(r)
		}
		probe := probes != nil && (r.URL.Path == HealthzPath || r.URL.Path == ReadyzPath)
		defer func() {
			done()
			if opts.Uploads != nil {
				opts.Uploads.done(info)
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			elapsed := time.Since(start)
			if opts.Metrics != nil {
				s := RequestStats{Family: info.family, Method: r.Method, Status: sw.status, Duration: elapsed,
					BytesOut: sw.bytes, Repository: info.repo}
				if s.Family == "" {
					s.Family = FamilyOther
				}
				if in != nil {
					s.BytesIn = in.n
				}
				opts.Metrics.Request(s)
			}
			level := slog.LevelInfo
			switch {
			case probe:
				// A failing probe is in the log once, from the probe
				// handler, not once per probe.
				level = slog.LevelDebug
			case sw.status >= 500:
				level = slog.LevelError
			}
			if !log.Enabled(r.Context(), level) {
				return
			}
			log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes), slog.Duration("duration", elapsed.Round(time.Microsecond)),
				slog.String("user", info.user), slog.String("id", info.id),
				slog.String("remote", r.RemoteAddr), slog.String("agent", r.UserAgent()))
		}()
		if probe {
			info.family = FamilyProbe
			probes.ServeHTTP(sw, r)
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// requestID returns the id a proxy in front gave the request, when it is
// a plain token of reasonable length, or a new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); id != "" && len(id) <= 64 && plainToken(id) {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func plainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// statusWriter records the status and size of a response for the access
// log. It forwards ReadFrom so that blob responses keep using sendfile.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(s.ResponseWriter, r)
	}
	s.bytes += n
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
