package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil))).With("component", "x")
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(WithRequestID(context.Background(), "req-1"), "request")
	defer span.End()

	log.InfoContext(ctx, "in a request")
	require.Contains(t, buf.String(), "component=x")
	require.Contains(t, buf.String(), "request_id=req-1")
	require.Contains(t, buf.String(), "trace_id="+span.SpanContext().TraceID().String())

	buf.Reset()
	log.WithGroup("g").Info("outside one", "k", "v")
	require.NotContains(t, buf.String(), "request_id")
	require.NotContains(t, buf.String(), "trace_id")
	require.Contains(t, buf.String(), "g.k=v")
}
