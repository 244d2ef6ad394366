package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/tracing"
)

// spans records every ended span of the process and tells a test's
// signal when a span of its trace ends. One provider for the whole test
// binary: OpenTelemetry's global provider is one per process.
type spans struct {
	*tracetest.SpanRecorder
	mu      sync.Mutex
	waiters map[trace.TraceID]*testkit.Signal
}

func (s *spans) OnEnd(sp sdktrace.ReadOnlySpan) {
	s.SpanRecorder.OnEnd(sp)
	s.mu.Lock()
	w := s.waiters[sp.SpanContext().TraceID()]
	s.mu.Unlock()
	if w != nil {
		w.Fire()
	}
}

// watch returns a signal fired whenever a span of id ends.
func (s *spans) watch(id trace.TraceID) *testkit.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig := testkit.NewSignal()
	s.waiters[id] = sig
	return sig
}

// of returns the ended spans of trace id.
func (s *spans) of(id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range s.Ended() {
		if sp.SpanContext().TraceID() == id {
			out = append(out, sp)
		}
	}
	return out
}

var recordSpans = sync.OnceValue(func() *spans {
	s := &spans{SpanRecorder: tracetest.NewSpanRecorder(), waiters: map[trace.TraceID]*testkit.Signal{}}
	tracing.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s)))
	return s
})

// TestOneTracePerRegistration: a registration sent with a client's
// traceparent yields one trace that runs from the HTTP request through
// the resolver, the outbox row, the relay's publish and the broker to the
// mailer's SMTP span, each span the child of the one before.
func TestOneTracePerRegistration(t *testing.T) {
	t.Parallel()
	rec := recordSpans()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		opts.traced = true
		s := startService(t, opts)

		var tid trace.TraceID
		var parent [8]byte
		_, _ = rand.Read(tid[:])
		_, _ = rand.Read(parent[:])
		ended := rec.watch(tid)
		body, err := json.Marshal(map[string]any{"query": registerQ, "variables": map[string]any{"e": "traced@example.com", "p": "correct horse battery"}})
		require.NoError(t, err)
		r := s.postWith(t, body, http.Header{"Traceparent": {"00-" + tid.String() + "-" + hex.EncodeToString(parent[:]) + "-01"}})
		require.Empty(t, r.Errors)
		s.sink.Next(t, testkit.Timeout)

		// From the SMTP span up, parent by parent; complete once it reaches
		// the span whose parent is the client's.
		walk := func() (names []string, kinds []trace.SpanKind, complete bool) {
			byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
			var sp sdktrace.ReadOnlySpan
			for _, s := range rec.of(tid) {
				byID[s.SpanContext().SpanID()] = s
				if s.Name() == "smtp send" {
					sp = s
				}
			}
			for ; sp != nil; sp = byID[sp.Parent().SpanID()] {
				names, kinds = append(names, sp.Name()), append(kinds, sp.SpanKind())
				complete = sp.Parent().SpanID() == trace.SpanID(parent)
			}
			return names, kinds, complete
		}
		testkit.WaitUntil(t, ended, func() bool { _, _, ok := walk(); return ok }, "one trace from the client's span to the SMTP span")
		chain, kinds, _ := walk()
		require.Equal(t, []string{"smtp send", "consume user.registered", "publish user.registered", "Mutation.register", "POST /query"}, chain)
		require.Equal(t, []trace.SpanKind{trace.SpanKindClient, trace.SpanKindConsumer, trace.SpanKindProducer, trace.SpanKindInternal, trace.SpanKindServer}, kinds)
	})
}
