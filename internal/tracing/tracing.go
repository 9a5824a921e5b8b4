// Package tracing exports OpenTelemetry spans of berth's work: one per
// request (server spans, joining a trace the client started with a W3C
// traceparent header), one per storage driver call, and one per request
// to an upstream registry (client spans, carrying the trace on).
//
// Tracing is off unless turned on (tracing.enabled, or any of the OTLP
// endpoint variables set). The exporter is OTLP over HTTP, configured by
// the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG. Off, nothing is
// wrapped: requests pay nothing for it.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/storage/driver"
)

// instrumentation names berth's tracers.
const instrumentation = "github.com/berthhq/berth"

// Enabled reports whether tracing is on: switched on in the
// configuration, or an OTLP endpoint named in the environment.
func Enabled(configured bool, getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	return configured || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Tracing is an installed tracer provider.
type Tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Setup installs a tracer provider exporting with OTLP over HTTP as the
// OTEL_* variables say, as the global one (so libraries that trace find
// it), with the W3C trace context and baggage propagators.
func Setup(ctx context.Context, version string) (*Tracing, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	return Install(sdktrace.NewBatchSpanProcessor(exp), version)
}

// Install installs a tracer provider sending spans to processor: Setup's
// work, and the way tests give it an in-memory exporter.
func Install(processor sdktrace.SpanProcessor, version string) (*Tracing, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("berth"), semconv.ServiceVersion(version)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// resource.Default reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
	// what the environment sets wins over the defaults above.
	if env, err := resource.New(context.Background(), resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(processor), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Tracing{provider: tp, shutdown: tp.Shutdown}, nil
}

// Shutdown sends the spans still buffered and stops the provider.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Handler wraps next (the registry behind the auth gate) in a server span
// per request, named by method and route family ("GET manifest"): span
// names stay few, and repository names are an attribute.
func (t *Tracing) Handler(next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, "berth",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if rt, ok := registry.ParseRoute(r.Method, r.URL.Path); ok {
				return r.Method + " " + registry.Family(rt.Kind)
			}
			return r.Method
		}))
}

// Transport wraps an upstream client's transport in client spans.
func (t *Tracing) Transport(next http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(next, otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "upstream " + r.Method }))
}

// Driver wraps a storage driver in a span per call, keeping the optional
// capabilities (driver.Opener, driver.Redirector) it has.
func (t *Tracing) Driver(d driver.Driver) driver.Driver {
	base := &tracedDriver{d: d, tr: t.provider.Tracer(instrumentation + "/storage")}
	o, isOpener := d.(driver.Opener)
	rd, isRedirector := d.(driver.Redirector)
	switch {
	case isOpener && isRedirector:
		return &struct {
			*tracedDriver
			tracedOpener
			tracedRedirector
		}{base, tracedOpener{base, o}, tracedRedirector{base, rd}}
	case isOpener:
		return &struct {
			*tracedDriver
			tracedOpener
		}{base, tracedOpener{base, o}}
	case isRedirector:
		return &struct {
			*tracedDriver
			tracedRedirector
		}{base, tracedRedirector{base, rd}}
	}
	return base
}

type tracedDriver struct {
	d  driver.Driver
	tr trace.Tracer
}

// span starts the span of one driver call.
func (t *tracedDriver) span(ctx context.Context, op, path string) (context.Context, trace.Span) {
	return t.tr.Start(ctx, "storage "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("berth.storage.driver", t.d.Name()), attribute.String("berth.storage.path", path)))
}

// end ends span with err's status. A missing path is an answer, not a
// failure.
func end(span trace.Span, err error) {
	if err != nil && !errors.Is(err, driver.ErrNotFound) {
		span.RecordError(err)
		span.SetStatus(codes.Error, "failed")
	}
	span.End()
}

func (t *tracedDriver) Name() string { return t.d.Name() }

func (t *tracedDriver) GetContent(ctx context.Context, path string) ([]byte, error) {
	ctx, span := t.span(ctx, "get", path)
	b, err := t.d.GetContent(ctx, path)
	end(span, err)
	return b, err
}

func (t *tracedDriver) PutContent(ctx context.Context, path string, content []byte) error {
	ctx, span := t.span(ctx, "put", path)
	err := t.d.PutContent(ctx, path, content)
	end(span, err)
	return err
}

func (t *tracedDriver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	ctx, span := t.span(ctx, "reader", path)
	rc, err := t.d.Reader(ctx, path, offset)
	end(span, err)
	return rc, err
}

func (t *tracedDriver) Writer(ctx context.Context, path string, append bool) (driver.FileWriter, error) {
	ctx, span := t.span(ctx, "writer", path)
	w, err := t.d.Writer(ctx, path, append)
	end(span, err)
	return w, err
}

func (t *tracedDriver) Stat(ctx context.Context, path string) (driver.FileInfo, error) {
	ctx, span := t.span(ctx, "stat", path)
	fi, err := t.d.Stat(ctx, path)
	end(span, err)
	return fi, err
}

func (t *tracedDriver) List(ctx context.Context, path string) ([]string, error) {
	ctx, span := t.span(ctx, "list", path)
	l, err := t.d.List(ctx, path)
	end(span, err)
	return l, err
}

func (t *tracedDriver) Move(ctx context.Context, src, dst string) error {
	ctx, span := t.span(ctx, "move", src)
	span.SetAttributes(attribute.String("berth.storage.destination", dst))
	err := t.d.Move(ctx, src, dst)
	end(span, err)
	return err
}

func (t *tracedDriver) Delete(ctx context.Context, path string) error {
	ctx, span := t.span(ctx, "delete", path)
	err := t.d.Delete(ctx, path)
	end(span, err)
	return err
}

func (t *tracedDriver) Walk(ctx context.Context, path string, fn driver.WalkFunc) error {
	ctx, span := t.span(ctx, "walk", path)
	err := t.d.Walk(ctx, path, fn)
	end(span, err)
	return err
}

type tracedOpener struct {
	t *tracedDriver
	o driver.Opener
}

func (t tracedOpener) Open(ctx context.Context, path string) (io.ReadSeekCloser, int64, error) {
	ctx, span := t.t.span(ctx, "open", path)
	f, n, err := t.o.Open(ctx, path)
	end(span, err)
	return f, n, err
}

type tracedRedirector struct {
	t  *tracedDriver
	rd driver.Redirector
}

func (t tracedRedirector) RedirectURL(r *http.Request, path string) (string, error) {
	_, span := t.t.span(r.Context(), "redirect", path)
	u, err := t.rd.RedirectURL(r, path)
	end(span, err)
	return u, err
}
