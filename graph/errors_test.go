package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/logctx"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// fakeAccounts lets a test choose what the service answers.
type fakeAccounts struct {
	err   error
	panic bool
}

func (f fakeAccounts) Register(context.Context, account.RegisterInput) (string, error) {
	if f.panic {
		panic("nil map in some/secret/path.go")
	}
	return "", f.err
}
func (f fakeAccounts) VerifyEmail(context.Context, string) (account.Verification, error) {
	return account.Verification{}, f.err
}
func (f fakeAccounts) Resend(context.Context, string) error { return f.err }
func (f fakeAccounts) VerifyEmailWithCode(context.Context, string, string) (account.Verification, error) {
	return account.Verification{}, f.err
}
func (f fakeAccounts) SignIn(context.Context, string, string) (string, time.Time, error) {
	return "", time.Time{}, f.err
}
func (f fakeAccounts) ChangeEmail(context.Context, string, string) error { return f.err }
func (f fakeAccounts) ConfirmEmailChange(context.Context, string, string) (account.Verification, error) {
	return account.Verification{}, f.err
}
func (f fakeAccounts) Receipt(context.Context, account.Verification) (string, error) {
	return "", f.err
}
func (f fakeAccounts) Status(context.Context, string) (status.Status, error) {
	return "", f.err
}
func (f fakeAccounts) Watch(context.Context, string, bool, func()) (<-chan *status.Change, error) {
	return nil, f.err
}

func newClient(a Accounts) *client.Client {
	h := NewHandler(&Resolver{Accounts: a}, HandlerOptions{
		Log:       testkit.Discard(),
		Websocket: gqlws.Transport{},
	})
	return client.New(h)
}

func TestErrorPresenter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		accounts fakeAccounts
		code     string
		message  string
		// retryWant is retryAfterSeconds, or attemptsLeft for INVALID_CODE.
		retryWant any
	}{
		{"client error keeps its message", fakeAccounts{err: fmt.Errorf("wrapped: %w", apperr.Errorf(apperr.InvalidToken, "this link is not valid"))}, "INVALID_TOKEN", "this link is not valid", nil},
		{"rate limit says when", fakeAccounts{err: apperr.Limited(1500*time.Millisecond, "slow down")}, "RATE_LIMITED", "slow down", float64(2)},
		{"internal detail never leaks", fakeAccounts{err: errors.New(`pq: relation "users" does not exist at db.internal:5432`)}, "INTERNAL", "internal error", nil},
		{"panic becomes internal", fakeAccounts{panic: true}, "INTERNAL", "internal error", nil},
		{"a wrong code says how many tries are left", fakeAccounts{err: apperr.WrongCode(3)}, "INVALID_CODE", "this code is not valid", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var resp struct{ Register struct{ WatchToken string } }
			err := newClient(tt.accounts).Post(`mutation{register(input:{email:"a@b.co",password:"12345678"}){watchToken}}`, &resp)
			require.Error(t, err)
			var list client.RawJsonError
			require.ErrorAs(t, err, &list)
			raw := string(list.RawMessage)
			require.Contains(t, raw, fmt.Sprintf(`"code":%q`, tt.code))
			require.Contains(t, raw, fmt.Sprintf(`"message":%q`, tt.message))
			for _, leak := range []string{"pq:", "db.internal", "secret/path", "wrapped"} {
				require.False(t, strings.Contains(raw, leak), "leaked %q: %s", leak, raw)
			}
			switch tt.code {
			case "RATE_LIMITED":
				require.Contains(t, raw, `"retryAfterSeconds":2`)
			case "INVALID_CODE":
				require.Contains(t, raw, fmt.Sprintf(`"attemptsLeft":%d`, tt.retryWant))
			}
		})
	}
}

// receiptFails verifies but cannot sign a receipt.
type receiptFails struct{ okAccounts }

func (receiptFails) Receipt(context.Context, account.Verification) (string, error) {
	return "", fmt.Errorf("sign receipt: %w", errors.New("key store at db.internal:5432 unreachable"))
}

// A receipt that cannot be signed answers INTERNAL, logged once, never
// an empty receipt: the field is a non-null String.
func TestReceiptFailureIsInternal(t *testing.T) {
	t.Parallel()
	var logs testkit.LogBuffer
	h := NewHandler(&Resolver{Accounts: receiptFails{}}, HandlerOptions{
		Log:       slog.New(slog.NewTextHandler(&logs, nil)),
		Websocket: gqlws.Transport{},
	})
	a := graphtest.Post(t, h, "/query", `mutation{verifyEmail(token:"t"){status receipt}}`, nil)
	require.Equal(t, "INTERNAL", a.Code(), "%+v", a.Errors)
	require.Len(t, a.Errors, 1)
	require.Equal(t, "internal error", a.Errors[0].Message)
	require.Empty(t, a.Data, "no payload with an empty receipt")
	require.Equal(t, 1, logs.Count("sign receipt"), logs.String())
}

// TestErrorLogsCarryRequestID: what the presenter and the recover function
// log for a request (an internal error, a request refused before it ran, a
// panic) carries its request_id, as every line written for a request
// does, so an operator can find the request an INTERNAL came from.
func TestErrorLogsCarryRequestID(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := slog.New(logctx.NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := logctx.WithRequestID(context.Background(), "req-4711")
	present := ErrorPresenter(log)
	present(ctx, &gqlerror.Error{Message: "boom", Path: ast.Path{ast.PathName("register")}, Err: errors.New("db down")})
	present(ctx, gqlerror.Wrap(errors.New("the body could not be decoded")))
	_ = RecoverFunc(log)(ctx, "nil map")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3, buf.String())
	for _, l := range lines {
		require.Contains(t, l, "request_id=req-4711", l)
	}
}

// TestManyOperationsWithoutName: a document of several operations sent
// without operationName keeps gqlgen's GRAPHQL_VALIDATION_FAILED but says
// what to do, instead of gqlgen's "operation  not found" (an empty name
// quoted); a name the document lacks keeps gqlgen's message.
func TestManyOperationsWithoutName(t *testing.T) {
	t.Parallel()
	c := newClient(fakeAccounts{})
	var resp map[string]any
	err := c.Post(`query A { verificationStatus(watchToken: "x") } query B { verificationStatus(watchToken: "y") }`, &resp)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"code":"GRAPHQL_VALIDATION_FAILED"`)
	require.Contains(t, err.Error(), `"message":"the document has more than one operation: name the one to run in operationName"`)

	err = c.Post(`query A { verificationStatus(watchToken: "x") }`, &resp, client.Operation("C"))
	require.Error(t, err)
	require.Contains(t, err.Error(), `"message":"operation C not found"`)
}

// TestSubscriptionOfTwoFields: gqlparser's single-field rule counts field
// names, so two aliases of verificationStatus pass validation and gqlgen
// refuses them later with an error of no code, which read "the request
// could not be read". It keeps BAD_USER_INPUT and says what is wrong.
func TestSubscriptionOfTwoFields(t *testing.T) {
	t.Parallel()
	c := newClient(fakeAccounts{})
	var resp map[string]any
	err := c.Post(`subscription { a: verificationStatus(watchToken: "x") { status } b: verificationStatus(watchToken: "y") { status } }`, &resp)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"code":"BAD_USER_INPUT"`)
	require.Contains(t, err.Error(), `"message":"a subscription selects exactly one field, aliases included: subscribe to each on its own"`)
}

// TestVariableOfWrongKind: gqlparser names a variable's JSON value of the
// wrong kind by Go's reflect.Kind ("cannot use slice as String"); the
// answer says it in JSON's words and keeps gqlgen's code.
func TestVariableOfWrongKind(t *testing.T) {
	t.Parallel()
	h := NewHandler(&Resolver{Accounts: fakeAccounts{}}, HandlerOptions{Log: testkit.Discard(), Websocket: gqlws.Transport{}})
	const register = `mutation($i:RegisterInput!){register(input:$i){status}}`
	const watch = `subscription($t:String!,$d:Boolean){verificationStatus(watchToken:$t,withDelivery:$d){status}}`
	tests := []struct {
		name, query string
		vars        map[string]any
		message     string
	}{
		{"an array for a String", register, map[string]any{"i": map[string]any{"email": "a@example.com", "password": []string{"x"}}}, "want a String, not an array"},
		{"an object for a String", register, map[string]any{"i": map[string]any{"email": map[string]any{"a": 1}, "password": "x"}}, "want a String, not an object"},
		{"a boolean for a String", register, map[string]any{"i": map[string]any{"email": true, "password": "x"}}, "want a String, not a boolean"},
		{"an array for an input", register, map[string]any{"i": []any{1}}, "want a RegisterInput (an object), not an array"},
		{"a boolean for an input", register, map[string]any{"i": false}, "want a RegisterInput (an object), not a boolean"},
		{"an object for a Boolean", watch, map[string]any{"t": "x", "d": map[string]any{}}, "want a Boolean, not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := graphtest.Post(t, h, "/query", tt.query, tt.vars)
			require.Equal(t, "GRAPHQL_VALIDATION_FAILED", a.Code(), "%+v", a.Errors)
			require.Len(t, a.Errors, 1)
			require.Equal(t, tt.message, a.Errors[0].Message)
		})
	}
}
