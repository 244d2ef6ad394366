package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/graph"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/httpapi"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// secret replaces SECRET in every fuzzed body: it must never reach the
// log, nor an answer that refuses the body.
const secret = "Hunter2-FuzzSecret-9f8e7d"

// stubAccounts answers like the account service without a database.
// stubAccounts answers the calls this test makes; the Step 5 ones it never
// makes are left to the embedded nil interface.
type stubAccounts struct{ graph.Accounts }

func (stubAccounts) Register(context.Context, account.RegisterInput) (string, error) {
	return "watch", nil
}
func (stubAccounts) VerifyEmail(context.Context, string) (account.Verification, error) {
	return account.Verification{Email: "a@example.com", VerifiedAt: time.Unix(0, 0)}, nil
}
func (stubAccounts) Resend(context.Context, string) error { return nil }
func (stubAccounts) Status(context.Context, string) (status.Status, error) {
	return status.Unverified, nil
}
func (stubAccounts) Watch(context.Context, string, bool, func()) (<-chan *status.Change, error) {
	ch := make(chan *status.Change, 1)
	ch <- &status.Change{Status: status.Unverified, At: time.Unix(0, 0)}
	close(ch)
	return ch, nil
}

// FuzzQueryBody drives POST /query through httpapi and the real GraphQL
// handler with any body: never a 5xx, never a panic, every error with a
// code, never the body in the log (at debug level) or in a refusal. The
// seed corpus is in testdata/fuzz/FuzzQueryBody.
func FuzzQueryBody(f *testing.F) {
	logs := &testkit.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := httpapi.New(httpapi.Options{
		GraphQL: graph.NewHandler(&graph.Resolver{Accounts: stubAccounts{}}, graph.HandlerOptions{
			Log:       log,
			Websocket: gqlws.Transport{},
		}),
		Web:          http.NotFoundHandler(),
		Metrics:      metrics.New(),
		Log:          log,
		MaxBodyBytes: 64 << 10,
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("SECRET"), []byte(secret))
		req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		require.Less(t, rec.Code, 500, "%s", rec.Body)
		require.NotContains(t, logs.Take(), secret, "the body reached the log")
		type answer struct {
			Errors []struct {
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		// One answer, or one per item of a batch.
		var answers []answer
		if err := json.Unmarshal(rec.Body.Bytes(), &answers); err != nil {
			answers = make([]answer, 1)
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &answers[0]), "a JSON answer: %s", rec.Body)
		}
		for _, a := range answers {
			for _, e := range a.Errors {
				require.NotEmpty(t, e.Extensions["code"], "every error has a code: %s", rec.Body)
			}
		}
		if rec.Code == http.StatusBadRequest || rec.Code == http.StatusRequestEntityTooLarge {
			require.NotContains(t, rec.Body.String(), secret, "a refusal quotes the body")
		}
	})
}
