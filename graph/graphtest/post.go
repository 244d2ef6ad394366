package graphtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// Answer is a GraphQL answer over HTTP as a test reads it.
type Answer struct {
	// Status is the HTTP status; Size the body's length in bytes.
	Status, Size int
	Data         map[string]json.RawMessage `json:"data"`
	Errors       []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// Code is the first error's extensions.code, or "".
func (a Answer) Code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

// Post sends query and vars to h in-process as a JSON POST to path, and
// fails t unless the answer is JSON and not a 5xx (nothing a client sends
// is a server error).
func Post(t testing.TB, h http.Handler, path, query string, vars map[string]any) Answer {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Less(t, rec.Code, 500, rec.Body.String())
	a := Answer{Status: rec.Code, Size: rec.Body.Len()}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a), rec.Body.String())
	return a
}
