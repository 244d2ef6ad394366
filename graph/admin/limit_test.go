package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/graph/graphtest"
	adminsvc "github.com/verifier/verifier/internal/admin"
	"github.com/verifier/verifier/internal/database/databasetest"
)

// aliases is a query of n aliased copies of field, under $f.
func aliases(n int, field string) string {
	var b strings.Builder
	b.WriteString("query($f:Int){")
	for i := range n {
		fmt.Fprintf(&b, " a%d:%s", i, field)
	}
	return b.String() + "}"
}

// TestBounds: the largest requests the admin API is made for pass; copies
// of them, and documents made large, are refused before anything runs,
// with the public API's codes and HTTP statuses.
func TestBounds(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	seedDeliveries(t, b.db, adminsvc.MaxPage)
	emails := `users(first:$f){edges{node{deliveries{state}}}}`
	deadLetters := ` deadLetters(first:$f){id kind address attempts reason at}`
	tests := []struct {
		name, query string
		status      int
		code        string
		errors      int
		message     string
	}{
		{"a whole page", fullPageQ, http.StatusOK, "", 0, ""},
		{"a whole page, __typename everywhere", "query($f:Int){" + strings.ReplaceAll(fullPage, "{", "{__typename ") + "}", http.StatusOK, "", 0, ""},
		{"a whole page and one of dead letters", "query($f:Int){" + fullPage + deadLetters + "}", http.StatusOK, "", 0, ""},
		{"introspection", `{__schema{types{name fields{name args{name} type{name kind ofType{name}}}}}}`, http.StatusOK, "", 0, ""},
		{"two whole pages", aliases(2, fullPage), http.StatusOK, "BAD_USER_INPUT", 1, "this request costs 6820, more than the limit of 5000"},
		{"three whole pages", aliases(3, fullPage), http.StatusOK, "BAD_USER_INPUT", 1, "this request costs 10230, more than the limit of 5000"},
		{"seven pages of emails", aliases(7, emails), http.StatusOK, "BAD_USER_INPUT", 1, "this request costs 5670, more than the limit of 5000"},
		{"a hundred pages of emails", aliases(100, emails), http.StatusOK, "BAD_USER_INPUT", 1, "this request has more than 400 fields"},
		{"a first out of range is the resolver's", `{users(first:100000){totalCount}}`, http.StatusOK, "BAD_USER_INPUT", 1, "first: want 1 to 200"},
		// The first one's error ends the others (non-null).
		{"10 mutations reach the resolvers", "mutation{" + strings.Repeat(` replayWebhook(id:"x")`, 10)[1:] + "}", http.StatusOK, "BAD_USER_INPUT", 1, "id: want a failed webhook's id"},
		{"11 mutations", "mutation{" + strings.Repeat(` replayWebhook(id:"x")`, 11)[1:] + "}", http.StatusOK, "BAD_USER_INPUT", 1, "at most 10 mutations per request, got 11"},
		{"401 fields", "{__schema{types{" + strings.Repeat(" name", 399) + "}}}", http.StatusOK, "BAD_USER_INPUT", 1, "this request has more than 400 fields"},
		{"tokens", "{" + strings.Repeat(" a", parserTokenLimit) + "}", http.StatusUnprocessableEntity, "GRAPHQL_PARSE_FAILED", 1, "exceeded token limit"},
		{"validation errors capped", "{" + strings.Repeat(" f", 300) + "}", http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1, "Cannot query field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, queries := b.post(t, tt.query, map[string]any{"f": adminsvc.MaxPage})
			require.Equal(t, tt.status, r.Status)
			require.Equal(t, tt.code, r.Code(), "%+v", r.Errors)
			require.Len(t, r.Errors, tt.errors)
			if tt.errors == 0 {
				require.NotEmpty(t, r.Data)
				return
			}
			require.Contains(t, r.Errors[0].Message, tt.message)
			require.Zero(t, queries, "refused before any look-up")
			require.Nil(t, r.Data["users"])
		})
	}
}

// TestNumberVariables: a JSON number that is no Int says so, where
// gqlparser quoted the value it failed to parse ("cannot use value 0 as
// Int" for 1.5), not the one sent; an Int within 64 bits reaches the
// resolver.
func TestNumberVariables(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	tests := []struct {
		name, n, code, message string
	}{
		{"a fraction", "1.5", "GRAPHQL_VALIDATION_FAILED", "want an Int: a whole number, without a fraction or exponent"},
		{"an exponent", "1e3", "GRAPHQL_VALIDATION_FAILED", "want an Int: a whole number, without a fraction or exponent"},
		{"beyond 64 bits", "99999999999999999999", "GRAPHQL_VALIDATION_FAILED", "want an Int: a whole number, and this one is too large"},
		{"below 64 bits", "-99999999999999999999", "GRAPHQL_VALIDATION_FAILED", "want an Int: a whole number, and this one is too small"},
		{"within 64 bits", "99999999999", "BAD_USER_INPUT", "first: want 1 to 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := graphtest.Post(t, b.handler, "/admin/query", `query($f:Int){users(first:$f){totalCount}}`, map[string]any{"f": json.Number(tt.n)})
			require.Equal(t, tt.code, r.Code(), "%+v", r.Errors)
			require.Len(t, r.Errors, 1)
			require.Equal(t, tt.message, r.Errors[0].Message)
		})
	}
	t.Run("an array", func(t *testing.T) {
		t.Parallel()
		r := graphtest.Post(t, b.handler, "/admin/query", `query($f:Int){users(first:$f){totalCount}}`, map[string]any{"f": []int{1}})
		require.Equal(t, "GRAPHQL_VALIDATION_FAILED", r.Code(), "%+v", r.Errors)
		require.Equal(t, "want an Int, not an array", r.Errors[0].Message, "an, before Int")
	})
}
