package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/testkit"
)

// resendCounter counts the resends that ran.
type resendCounter struct {
	okAccounts
	ran *atomic.Int32
}

func (c resendCounter) Resend(context.Context, string) error {
	c.ran.Add(1)
	return nil
}

// A GET whose selected operation is not a query answers 405 with "Allow:
// POST" and runs nothing, whatever else is wrong with it; what does not
// parse stays a parse error, and a query gets the answers a POST gets.
func TestOnlyQueriesOverGET(t *testing.T) {
	t.Parallel()
	const resend = `resendVerificationEmail(email:"a@b.co")`
	tests := []struct {
		name, query, operationName, variables string
		status                                int
		code                                  string
	}{
		{"a query", `{verificationStatus(watchToken:"w")}`, "", "", http.StatusOK, ""},
		{"a mutation", `mutation{` + resend + `}`, "", "", http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a mutation with an unknown field", `mutation{` + resend + ` nope}`, "", "", http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a mutation with a variable of the wrong type", `mutation($e:String!){resendVerificationEmail(email:$e)}`, "", `{"e":5}`, http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a mutation with a variable missing", `mutation($e:String!){resendVerificationEmail(email:$e)}`, "", "", http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a mutation over the field limit", `mutation{` + strings.Repeat(resend+" ", maxFields+1) + `}`, "", "", http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a mutation picked by name", `query Q{verificationStatus(watchToken:"w")} mutation M{` + resend + `}`, "M", "", http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a query picked by name beside a mutation", `query Q{verificationStatus(watchToken:"w")} mutation M{` + resend + `}`, "Q", "", http.StatusOK, ""},
		{"a subscription", `subscription{verificationStatus(watchToken:"w"){status}}`, "", "", http.StatusMethodNotAllowed, "BAD_USER_INPUT"},
		{"a mutation that does not parse", `mutation{` + resend, "", "", http.StatusUnprocessableEntity, "GRAPHQL_PARSE_FAILED"},
		{"a query that does not validate", `{nope}`, "", "", http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"no operation of that name", `mutation M{` + resend + `}`, "N", "", http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ran := new(atomic.Int32)
			h := NewHandler(&Resolver{Accounts: resendCounter{ran: ran}}, HandlerOptions{Log: testkit.Discard(), Websocket: gqlws.Transport{}})
			params := url.Values{"query": {tt.query}}
			if tt.operationName != "" {
				params.Set("operationName", tt.operationName)
			}
			if tt.variables != "" {
				params.Set("variables", tt.variables)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/query?"+params.Encode(), nil))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			var a graphtest.Answer
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a), rec.Body.String())
			require.Equal(t, tt.code, a.Code(), rec.Body.String())
			if tt.status == http.StatusMethodNotAllowed {
				require.Equal(t, "POST", rec.Header().Get("Allow"))
				require.Nil(t, a.Data)
			}
			require.Zero(t, ran.Load(), "nothing runs over GET")
		})
	}
}

// A mutation known by its persisted-query hash is refused over GET too:
// the check reads the query the hash stands for, so it must come after
// the persisted-query extension has put it in place.
func TestPersistedMutationOverGET(t *testing.T) {
	t.Parallel()
	const query = `mutation{resendVerificationEmail(email:"a@b.co")}`
	sum := sha256.Sum256([]byte(query))
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	ran := new(atomic.Int32)
	h := NewHandler(&Resolver{Accounts: resendCounter{ran: ran}}, HandlerOptions{Log: testkit.Discard(), Websocket: gqlws.Transport{}})

	body := `{"query":` + strconv.Quote(query) + `,"extensions":` + ext + `}`
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, int32(1), ran.Load(), "registered over POST, where it runs")

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/query?"+url.Values{"extensions": {ext}}.Encode(), nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code, rec.Body.String())
	var a graphtest.Answer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a), rec.Body.String())
	require.Equal(t, "BAD_USER_INPUT", a.Code())
	require.Equal(t, int32(1), ran.Load(), "nothing runs over GET")
}
