package tracing

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// A span's context survives the trip through a stored traceparent and
// through message headers, and a context without a span writes nothing.
func TestCarriers(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	want := span.SpanContext()

	tparent := TraceParent(ctx)
	require.Regexp(t, `^00-`+want.TraceID().String()+`-`+want.SpanID().String()+`-01$`, tparent)
	for name, got := range map[string]context.Context{
		"traceparent": FromTraceParent(context.Background(), tparent),
		"headers":     FromHeaders(context.Background(), Headers(ctx)),
	} {
		sc := trace.SpanContextFromContext(got)
		require.True(t, sc.IsRemote(), name)
		require.Equal(t, want.TraceID(), sc.TraceID(), name)
		require.Equal(t, want.SpanID(), sc.SpanID(), name)
	}

	require.Empty(t, TraceParent(context.Background()))
	require.Nil(t, Headers(context.Background()))
	bg := context.Background()
	require.Equal(t, bg, FromTraceParent(bg, ""))
	require.Equal(t, bg, FromHeaders(bg, nil))
}

// Without an endpoint Start installs nothing: the global provider stays
// OpenTelemetry's no-op.
func TestStartWithoutEndpoint(t *testing.T) {
	t.Parallel()
	stop, err := Start(context.Background(), "", "v0")
	require.NoError(t, err)
	require.NoError(t, stop(context.Background()))
	_, span := Tracer().Start(context.Background(), "x")
	require.False(t, span.IsRecording())
	span.End()
}
