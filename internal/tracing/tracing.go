// Package tracing is the service's OpenTelemetry setup and the few helpers
// that carry a trace across the outbox and the broker:
//
//	request (otelhttp) → outbox row (its traceparent column)
//	→ relay's publish span (traceparent in the message's headers)
//	→ consumer span → SMTP span
//
// Without OTEL_EXPORTER_OTLP_ENDPOINT the global provider stays OTel's
// no-op: spans cost a call that returns at once and nothing is kept.
package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of every span of the service, and the
// default service.name of its resource.
const Name = "verifier"

// Propagator reads and writes W3C trace context (traceparent,
// tracestate), the format of the outbox column and the message headers.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracer is the service's tracer on the global provider (no-op unless
// Start or a test installed one).
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Start installs an OTLP/HTTP exporter as the global provider when
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) is set; the exporter reads it and
// the other OTEL_* variables (headers, timeout, sampler, service name)
// itself. stop flushes the spans still buffered; call it last.
func Start(ctx context.Context, endpoint, version string) (stop func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if endpoint == "" {
		return noop, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return noop, err
	}
	// Ours first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", Name), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return noop, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return tp.Shutdown, nil
}

// Install makes tp the global provider (Start, and tests with an
// in-memory recorder).
func Install(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator)
}

// Headers returns ctx's trace context as message headers (traceparent and
// tracestate), nil when ctx has none.
func Headers(ctx context.Context) map[string]string {
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

// TraceParent is ctx's W3C traceparent, "" when ctx has no span.
func TraceParent(ctx context.Context) string {
	return Headers(ctx)["traceparent"]
}

// FromHeaders returns ctx with the remote span context that headers carry
// as the parent of the spans started from it.
func FromHeaders(ctx context.Context, headers map[string]string) context.Context {
	if len(headers) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier(headers))
}

// FromTraceParent is FromHeaders for a stored traceparent.
func FromTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return FromHeaders(ctx, map[string]string{"traceparent": traceparent})
}
