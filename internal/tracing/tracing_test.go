package tracing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata/sqlite"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/filesystem"
)

func TestEnabled(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		configured bool
		env        map[string]string
		want       bool
	}{
		{false, nil, false},
		{true, nil, true},
		{false, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{false, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{false, map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
	}
	for _, tc := range tests {
		if got := Enabled(tc.configured, env(tc.env)); got != tc.want {
			t.Errorf("Enabled(%v, %v) = %v, want %v", tc.configured, tc.env, got, tc.want)
		}
	}
}

// TestSpans serves a blob upload and GET through a traced registry on a
// traced filesystem driver, with an upstream request through a traced
// transport, and checks the spans in an in-memory exporter: a server span
// per request, joining the client's trace, storage spans inside them, and
// a client span that carries the trace to the upstream.
func TestSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := Install(sdktrace.NewSimpleSpanProcessor(exp), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())

	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	drv := tr.Driver(fs)
	if _, ok := drv.(driver.Opener); !ok {
		t.Fatal("the traced filesystem driver lost driver.Opener")
	}
	meta, err := sqlite.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	blobs := storage.New(drv)
	log := slog.New(slog.DiscardHandler)
	reg := registry.New(blobs, gc.Guard(meta, blobs), registry.Options{Logger: log})
	srv := httptest.NewServer(registry.Handler(reg, registry.HandlerOptions{Logger: log, Wrap: tr.Handler}))
	defer srv.Close()

	body := "hello, traces"
	d := digest.FromString(body)
	resp, err := http.Post(srv.URL+"/v2/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %v %v", resp.Status, err)
	}
	resp.Body.Close()

	// A GET inside a trace the client started.
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/app/blobs/"+d.String(), nil)
	req.Header.Set("traceparent", "00-"+parent+"-00f067aa0ba902b7-01")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Fatalf("GET blob = %q", got)
	}

	// An upstream request carries the trace on.
	var upstreamParent string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamParent = r.Header.Get("traceparent")
	}))
	defer up.Close()
	ctx, span := tr.provider.Tracer("test").Start(context.Background(), "fill")
	ureq, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL+"/v2/", nil)
	uresp, err := (&http.Client{Transport: tr.Transport(http.DefaultTransport)}).Do(ureq)
	if err != nil {
		t.Fatal(err)
	}
	uresp.Body.Close()
	span.End()
	if !strings.Contains(upstreamParent, span.SpanContext().TraceID().String()) {
		t.Errorf("upstream got traceparent %q, want the trace %s", upstreamParent, span.SpanContext().TraceID())
	}

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	for _, name := range []string{"POST upload", "GET blob", "storage writer", "storage move", "storage open", "upstream GET"} {
		if len(byName[name]) == 0 {
			names := []string{}
			for n := range byName {
				names = append(names, n)
			}
			t.Errorf("no span %q; spans: %v", name, names)
		}
	}
	if g := byName["GET blob"]; len(g) > 0 {
		if g[0].SpanKind != trace.SpanKindServer || g[0].SpanContext.TraceID().String() != parent {
			t.Errorf("GET blob span: kind %v, trace %s; want a server span in the client's trace %s", g[0].SpanKind, g[0].SpanContext.TraceID(), parent)
		}
		for _, o := range byName["storage open"] {
			if o.Parent.SpanID() != g[0].SpanContext.SpanID() {
				t.Errorf("storage open span's parent is %s, want the GET's span %s", o.Parent.SpanID(), g[0].SpanContext.SpanID())
			}
		}
	}
}
