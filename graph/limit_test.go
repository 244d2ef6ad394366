package graph

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// post sends query to a handler over okAccounts.
func post(t *testing.T, query string) graphtest.Answer {
	t.Helper()
	h := NewHandler(&Resolver{Accounts: okAccounts{}}, HandlerOptions{
		Log:       testkit.Discard(),
		Websocket: gqlws.Transport{},
	})
	return graphtest.Post(t, h, "/query", query, nil)
}

func repeat(n int, unit func(i int) string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		b.WriteString(unit(i))
	}
	return b.String() + "}"
}

func TestQueryLimits(t *testing.T) {
	t.Parallel()
	alias := func(i int) string { return fmt.Sprintf(" a%d:verificationStatus(watchToken:\"w\")", i) }
	conflict := func(i int) string { return fmt.Sprintf(" verificationStatus(watchToken:\"%d\")", i) }
	unknown := func(i int) string { return fmt.Sprintf(" f%d", i) }
	tests := []struct {
		name, query string
		code        string
		errors      int
		message     string
	}{
		{"30 lookups", repeat(30, alias), "", 0, ""},
		{"31 lookups", repeat(31, alias), "BAD_USER_INPUT", 1, "this request costs 310, more than the limit of 300"},
		{"6 mutations", "mutation{" + strings.Repeat(` resendVerificationEmail(email:"a@b.co")`, 6)[1:] + "}", "BAD_USER_INPUT", 1, "at most 5 mutations per request, got 6"},
		// Introspection below __schema costs nothing, so only the field
		// limit applies.
		{"400 fields", "{__schema{types{" + strings.Repeat(" name", 398) + "}}}", "", 0, ""},
		{"401 fields", "{__schema{types{" + strings.Repeat(" name", 399) + "}}}", "BAD_USER_INPUT", 1, "this request has more than 400 fields"},
		// __schema answers the whole schema: 100 each, so aliases of it
		// cannot make a small request answer hundreds of KiB.
		{"3 schemas", repeat(3, func(i int) string { return fmt.Sprintf(" s%d:__schema{queryType{name}}", i) }), "", 0, ""},
		{"4 schemas", repeat(4, func(i int) string { return fmt.Sprintf(" s%d:__schema{queryType{name}}", i) }), "BAD_USER_INPUT", 1, "this request costs 400, more than the limit of 300"},
		{"schemas in fragments", "{...F ...G} fragment F on Query { a:__schema{queryType{name}} b:__schema{queryType{name}} } fragment G on Query { ...on Query { c:__schema{queryType{name}} d:__schema{queryType{name}} } }", "BAD_USER_INPUT", 1, "this request costs 400"},
		{"fields in fragments", "{...F} fragment F on Query {" + strings.Repeat(" ...G", 30) + "} fragment G on Query {" + strings.Repeat(" __typename", 20) + "}", "BAD_USER_INPUT", 1, "this request has more than 400 fields"},
		{"an unused fragment counts", "{__typename} fragment U on Query {" + strings.Repeat(" __typename", 400) + "}", "BAD_USER_INPUT", 1, "this request has more than 400 fields"},
		{"a used fragment counts once", "{...F ...F} fragment F on Query {" + strings.Repeat(" __typename", 100) + "}", "", 0, ""},
		{"a self-spreading fragment goes to validation", "{...F} fragment F on Query { __typename ...F }", "GRAPHQL_VALIDATION_FAILED", 1, "Cannot spread fragment"},
		{"tokens", "{" + strings.Repeat(" a", parserTokenLimit) + "}", "GRAPHQL_PARSE_FAILED", 1, "exceeded token limit"},
		{"conflicts capped", repeat(300, conflict), "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1, "Fields \"verificationStatus\" conflict"},
		{"unknown fields capped", repeat(300, unknown), "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1, "Cannot query field"},
		{"a long name cut", "{" + strings.Repeat("x", 60<<10) + "}", "GRAPHQL_VALIDATION_FAILED", 1, "Cannot query field \"xxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := post(t, tt.query)
			require.LessOrEqual(t, r.Size, 4<<10)
			require.Equal(t, tt.code, r.Code(), "%+v", r.Errors)
			require.Len(t, r.Errors, tt.errors)
			if tt.errors > 0 {
				require.Contains(t, r.Errors[0].Message, tt.message)
				require.LessOrEqual(t, len(r.Errors[0].Message), maxMessageBytes)
			}
			if tt.errors == maxValidationErrors+1 {
				require.Equal(t, "too many validation errors; the first 10 are shown", r.Errors[maxValidationErrors].Message)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", truncate("short", 10))
	require.Equal(t, "abcdefg…", truncate("abcdefghijklmn", 10))
	// Never a broken rune: "é" is 2 bytes.
	cut := truncate(strings.Repeat("é", 10), 10)
	require.Equal(t, "ééé…", cut)
}

func TestPresenterNeverLogsRequests(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2-SuperSecret"
	var logs bytes.Buffer
	present := ErrorPresenter(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()

	// As gqlgen's POST transport raises it: no path, no code, the body in
	// the text.
	got := present(ctx, gqlerror.Errorf("json request body could not be decoded: %s", `{"password":"`+secret+`"}`))
	require.Equal(t, "BAD_USER_INPUT", got.Extensions["code"])
	require.NotContains(t, got.Message, secret)
	require.NotContains(t, logs.String(), secret)
	require.Contains(t, logs.String(), "request refused before it ran")

	// A panic outside any field is still internal.
	got = present(ctx, panicError{"boom"})
	require.Equal(t, "INTERNAL", got.Extensions["code"])
	require.Contains(t, logs.String(), "boom")
}

// subscriptionContext is the context gqlgen gives a subscription
// operation on the websocket whose count is socket.
func subscriptionContext(socket context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(socket)
	oc := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Subscription}}
	return graphql.WithOperationContext(ctx, oc), cancel
}

func TestSubscriptionLimit(t *testing.T) {
	t.Parallel()
	l := &subscriptionLimit{perSocket: 2, total: 3, present: ErrorPresenter(testkit.Discard())}
	// stream ends when its context does, like a gqlgen subscription.
	stream := func(ctx context.Context) graphql.ResponseHandler {
		return func(ctx context.Context) *graphql.Response {
			<-ctx.Done()
			return nil
		}
	}
	refused := func(h graphql.ResponseHandler, ctx context.Context) bool {
		r := h(ctx)
		if r == nil || len(r.Errors) == 0 {
			return false
		}
		require.Equal(t, "RATE_LIMITED", r.Errors[0].Extensions["code"])
		require.Equal(t, 10, r.Errors[0].Extensions["retryAfterSeconds"])
		require.Nil(t, h(ctx), "then the stream ends")
		return true
	}
	start := func(socket context.Context) (graphql.ResponseHandler, context.Context, context.CancelFunc) {
		ctx, cancel := subscriptionContext(socket)
		return l.InterceptOperation(ctx, stream), ctx, cancel
	}

	a, b := withSocketCount(context.Background()), withSocketCount(context.Background())
	_, _, cancelA1 := start(a)
	a2, a2ctx, cancelA2 := start(a)
	h, ctx, cancel := start(a)
	require.True(t, refused(h, ctx), "a third on socket a")
	cancel()

	_, _, cancelB1 := start(b)
	h, ctx, cancel = start(b)
	require.True(t, refused(h, ctx), "a fourth in all")
	cancel()

	// The end of a stream frees its place at once; so does the end of its
	// context (whatever else ended it).
	cancelA2()
	require.Nil(t, a2(a2ctx))
	require.Equal(t, int64(2), l.open.Load())
	_, _, cancelB2 := start(b)
	require.Equal(t, int64(3), l.open.Load())

	var wg sync.WaitGroup
	for _, c := range []context.CancelFunc{cancelA1, cancelB1, cancelB2} {
		wg.Go(c)
	}
	wg.Wait()
	// Released from context.AfterFunc's goroutine.
	testkit.Eventually(t, func() bool { return l.open.Load() == 0 }, "every subscription released")

	// Queries and mutations are not counted.
	oc := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query}}
	called := false
	l.InterceptOperation(graphql.WithOperationContext(context.Background(), oc), func(context.Context) graphql.ResponseHandler {
		called = true
		return nil
	})
	require.True(t, called)
	require.Equal(t, int64(0), l.open.Load())
}
