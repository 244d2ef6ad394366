package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/verifier/verifier/internal/apperr"
)

// requestFields are the members of a GraphQL-over-HTTP request object, the
// only names an error message may quote.
var requestFields = []string{"query", "operationName", "variables", "extensions"}

// maxBatchItems caps the operations of one batch, as many as Apollo's
// BatchHttpLink sends by default (batchMax). Each runs as a request of its
// own for every limit (cost, mutations, rate limits), so a batch costs at
// most this many requests.
const maxBatchItems = 10

// checkBody reports why body is neither one GraphQL request object nor a
// batch (a JSON array) of 1 to maxBatchItems of them, with a message that
// never quotes the body: gqlgen's POST transport would put the whole body
// (passwords included) in its error text.
//
// JSON text is UTF-8 (RFC 8259, section 8.1), but encoding/json takes any
// bytes and turns those that are not UTF-8 into U+FFFD: an address or a
// password would be stored as something the client never sent, and two
// different Latin-1 passwords would hash alike. Such a body is refused.
func checkBody(body []byte) *apperr.Error {
	if !json.Valid(body) {
		return apperr.Errorf(apperr.BadUserInput, "request body is not valid JSON")
	}
	if !utf8.Valid(body) {
		return apperr.Errorf(apperr.BadUserInput, "request body is not valid JSON: it is not UTF-8 text")
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); trimmed[0] != '[' {
		return checkRequest(body, 0)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return apperr.Errorf(apperr.BadUserInput, "request body is not valid JSON")
	}
	switch {
	case len(items) == 0:
		return apperr.Errorf(apperr.BadUserInput, "an empty batch: send at least one operation")
	case len(items) > maxBatchItems:
		return apperr.Errorf(apperr.BadUserInput, "at most %d operations per batch, got %d", maxBatchItems, len(items))
	}
	for i, item := range items {
		if err := checkRequest(item, i+1); err != nil {
			return err
		}
	}
	return nil
}

// checkRequest reports why body, which is valid JSON, is not one GraphQL
// request object: the request body (item 0) or a batch's item.
//
// The body is decoded exactly as gqlgen decodes it (into graphql.RawParams
// with numbers kept as json.Number), so whatever passes here gqlgen
// decodes too.
func checkRequest(body []byte, item int) *apperr.Error {
	what, prefix := "request body", ""
	if item > 0 {
		what = fmt.Sprintf("batch item %d", item)
		prefix = what + ": "
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); trimmed[0] != '{' {
		return apperr.Errorf(apperr.BadUserInput, "%s must be a JSON object with query, operationName, variables and extensions", what)
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
			return apperr.Errorf(apperr.BadUserInput, "%s%s must be %s", prefix, te.Field, want)
		}
		return apperr.Errorf(apperr.BadUserInput, "%s is not a GraphQL request", what)
	}
	// Without a query there is no GraphQL request (GraphQL over HTTP), as
	// for a GET with neither query nor extensions: 400, not gqlgen's 422
	// "no operation provided". A persisted query's hash rides in
	// extensions; other extensions are no query.
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return apperr.Errorf(apperr.BadUserInput, "%s has no query (nor extensions with a persisted query)", what)
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
	// As for a body (checkBody): gqlgen would take bytes that are not
	// UTF-8 as U+FFFD, in variables and operationName alike.
	for name, values := range q {
		if !utf8.ValidString(name) || slices.ContainsFunc(values, func(v string) bool { return !utf8.ValidString(v) }) {
			return apperr.Errorf(apperr.BadUserInput, "the query string is not UTF-8 text")
		}
	}
	if q.Get("query") == "" && q.Get("extensions") == "" {
		return apperr.Errorf(apperr.BadUserInput, "a GET needs a query parameter (or extensions with a persisted query)")
	}
	var extensions map[string]any
	for _, name := range []string{"variables", "extensions"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		// gqlgen's decoder stops after the first value and ignores
		// what follows it: json.Valid sees the whole parameter, as
		// checkBody sees the whole body.
		dec := json.NewDecoder(bytes.NewReader([]byte(v)))
		dec.UseNumber()
		var m map[string]any
		if !json.Valid([]byte(v)) || dec.Decode(&m) != nil {
			return apperr.Errorf(apperr.BadUserInput, "%s must be a JSON object", name)
		}
		if name == "extensions" {
			extensions = m
		}
	}
	// As for a body (checkRequest): other extensions are no query.
	if q.Get("query") == "" && extensions["persistedQuery"] == nil {
		return apperr.Errorf(apperr.BadUserInput, "a GET needs a query parameter (or extensions with a persisted query)")
	}
	return nil
}
