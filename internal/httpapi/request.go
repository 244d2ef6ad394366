package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
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
