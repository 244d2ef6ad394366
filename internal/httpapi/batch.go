package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/verifier/verifier/internal/apperr"
)

// batch answers a JSON array of GraphQL requests (Apollo's BatchHttpLink)
// with the array of their results, in order. Each item runs through the
// rest of the chain and GraphQL as a request of its own, so every
// per-request limit (cost, mutations, rate limits) holds per item;
// limitBody has checked that there are at most maxBatchItems and that each
// is a GraphQL request. Items run one after another: a client that
// batches mutations expects them applied in order.
func batch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		// limitBody's copy in memory, at most MaxBodyBytes.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, "could not read the request body"))
			return
		}
		var items []json.RawMessage
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '[' || json.Unmarshal(body, &items) != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		if isEventStream(r) {
			writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, "an event stream carries one operation: send a batch without Accept: text/event-stream"))
			return
		}
		results := make([]json.RawMessage, len(items))
		for i, item := range items {
			ir := r.Clone(r.Context())
			ir.Body, ir.ContentLength = io.NopCloser(bytes.NewReader(item)), int64(len(item))
			iw := &itemWriter{header: http.Header{}}
			next.ServeHTTP(iw, ir)
			results[i] = iw.result()
		}
		writeJSON(w, http.StatusOK, results)
	})
}

// noBatch refuses a batch, which limitBody lets through for /query, on an
// endpoint that takes one GraphQL request per body (the admin API): gqlgen
// would answer "the request could not be read" and log a warning for it.
func noBatch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// limitBody's copy in memory, at most MaxBodyBytes.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, "could not read the request body"))
			return
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
			writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, "a batch is not taken here: send one GraphQL request per body"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// itemWriter keeps the answer to one item of a batch; its status and
// headers are the batch's business, not the client's.
type itemWriter struct {
	header http.Header
	body   bytes.Buffer
}

func (w *itemWriter) Header() http.Header         { return w.header }
func (w *itemWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *itemWriter) WriteHeader(int)             {}

// result is the item's answer, which GraphQL and the middlewares always
// write as one JSON object; anything else would be a bug, answered as one.
func (w *itemWriter) result() json.RawMessage {
	if b := bytes.TrimSpace(w.body.Bytes()); json.Valid(b) {
		return b
	}
	return json.RawMessage(`{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}`)
}
