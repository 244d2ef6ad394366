package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"slices"

	"github.com/99designs/gqlgen/graphql"

	"github.com/verifier/verifier/internal/apperr"
)

// requestFields are the members of a GraphQL-over-HTTP request object, the
// only names an error message may quote.
var requestFields = []string{"query", "operationName", "variables", "extensions"}

// checkRequest reports why body is not one GraphQL request object, with a
// message that never quotes the body: gqlgen's POST transport would put
// the whole body (passwords included) in its error text.
//
// The body is decoded exactly as gqlgen decodes it (into graphql.RawParams
// with numbers kept as json.Number), so whatever passes here gqlgen
// decodes too.
func checkRequest(body []byte) *apperr.Error {
	if !json.Valid(body) {
		return apperr.Errorf(apperr.BadUserInput, "request body is not valid JSON")
	}
	switch trimmed := bytes.TrimLeft(body, " \t\r\n"); trimmed[0] {
	case '[':
		// Apollo's BatchHttpLink sends arrays. One operation per request
		// keeps every per-request limit (mutations, cost) meaningful.
		return apperr.Errorf(apperr.BadUserInput, "batching is not supported: send one operation per request")
	case '{':
	default:
		return apperr.Errorf(apperr.BadUserInput, "request body must be a JSON object with query, operationName, variables and extensions")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var p graphql.RawParams
	if err := dec.Decode(&p); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && slices.Contains(requestFields, te.Field) {
			want := "a string"
			if te.Field == "variables" || te.Field == "extensions" {
				want = "an object"
			}
			return apperr.Errorf(apperr.BadUserInput, "%s must be %s", te.Field, want)
		}
		return apperr.Errorf(apperr.BadUserInput, "request body is not a GraphQL request")
	}
	return nil
}

// checkQueryString reports why rawQuery is not a GraphQL request over GET,
// quoting nothing of it. variables and extensions are decoded as gqlgen's
// GET transport decodes them (JSON, numbers kept as json.Number).
func checkQueryString(rawQuery string) *apperr.Error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return apperr.Errorf(apperr.BadUserInput, "the query string is not URL-encoded")
	}
	if q.Get("query") == "" && q.Get("extensions") == "" {
		return apperr.Errorf(apperr.BadUserInput, "a GET needs a query parameter (or extensions with a persisted query)")
	}
	for _, name := range []string{"variables", "extensions"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(v)))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return apperr.Errorf(apperr.BadUserInput, "%s must be a JSON object", name)
		}
	}
	return nil
}
