package main

// Tests of GraphQL over HTTP beyond one POST: queries over GET (never
// mutations), automatic persisted queries, subscriptions over Server-Sent
// Events, and batches. The real clients (urql, Apollo, graphql-sse,
// graphql-ws) are driven in web/app/e2e/clients.test.mjs.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/testkit"
)

// get sends a GraphQL request over GET with params in the query string.
func (s *svc) get(t testing.TB, params url.Values) (gqlResponse, http.Header) {
	t.Helper()
	resp, err := s.http.Get(s.url("/query?" + params.Encode()))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := gqlResponse{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, &out), "JSON body: %s", raw)
	return out, resp.Header
}

func getParams(query string, vars map[string]any) url.Values {
	v, _ := json.Marshal(vars)
	return url.Values{"query": {query}, "variables": {string(v)}}
}

// TestGraphQLOverGET: queries over GET answer as over POST, under the
// same limits; a mutation or subscription over GET answers 405 with
// "Allow: POST", runs nothing and is not logged.
func TestGraphQLOverGET(t *testing.T) {
	t.Parallel()
	logs := &testkit.LogBuffer{}
	dbFile := filepath.Join(t.TempDir(), "verifier.db")
	s := startInstance(t, instanceOptions{database: dbFile, log: logs, env: map[string]string{"LOG_LEVEL": "debug"}})
	watch := s.register(t, "get@example.com")

	r, h := s.get(t, getParams(statusQ, map[string]any{"w": watch}))
	require.Equal(t, http.StatusOK, r.Status)
	require.Empty(t, r.Errors)
	require.Equal(t, "UNVERIFIED", r.Data["verificationStatus"])
	require.Equal(t, "no-store", h.Get("Cache-Control"), "a status kept by a cache would never turn VERIFIED")

	r, _ = s.get(t, getParams(statusQ, map[string]any{"w": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))
	require.Equal(t, "INVALID_TOKEN", r.code(), "the same codes as over POST")

	var aliases strings.Builder
	aliases.WriteString("query($w:String!){")
	for i := range 50 {
		aliases.WriteString(" a" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ":verificationStatus(watchToken:$w)")
	}
	aliases.WriteString("}")
	r, _ = s.get(t, getParams(aliases.String(), map[string]any{"w": watch}))
	require.Equal(t, "BAD_USER_INPUT", r.code(), "the same cost limit as over POST")
	require.Contains(t, r.Errors[0].Message, "more than the limit")

	const password = "Hunter2-GET-Secret-Pw"
	refused := []struct{ name, query string }{
		{"a mutation", registerQ},
		{"a mutation named among queries", "query Q($w:String!){verificationStatus(watchToken:$w)} " + registerQ},
		{"a subscription", watchQ},
		{"a mutation that does not validate", `mutation($e:String!,$p:String!){register(input:{email:$e,password:$p}){nope}}`},
	}
	for _, tt := range refused {
		p := getParams(tt.query, map[string]any{"e": "never@example.com", "p": password, "w": watch})
		if strings.HasPrefix(tt.query, "query Q") {
			p.Set("query", strings.Replace(tt.query, "mutation(", "mutation M(", 1))
			p.Set("operationName", "M")
		}
		r, h := s.get(t, p)
		require.Equal(t, http.StatusMethodNotAllowed, r.Status, tt.name)
		require.Equal(t, "POST", h.Get("Allow"), tt.name)
		require.Equal(t, "BAD_USER_INPUT", r.code(), tt.name)
		require.Nil(t, r.Data, tt.name)
	}

	s.stop()
	require.NotContains(t, logs.String(), password, "a query string reached the log")
	require.Contains(t, logs.String(), `msg="http request"`, "the log is at debug level")
	db, err := database.Open(context.Background(), "sqlite:"+dbFile)
	require.NoError(t, err)
	defer db.Close()
	users, err := db.Ent.User.Query().Count(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, users, "only the registration over POST wrote a row")
}

// TestPersistedQueries follows Apollo's persisted-query link: a hash
// alone, unknown, answers PersistedQueryNotFound (the link then sends the
// query with its hash); once known, the hash alone runs the query over
// POST and GET. A hash that does not match its query is refused.
func TestPersistedQueries(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	watch := s.register(t, "apq@example.com")
	sum := sha256.Sum256([]byte(statusQ))
	hash := hex.EncodeToString(sum[:])
	ext := func(hash string) map[string]any {
		return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
	}
	vars := map[string]any{"w": watch}
	post := func(body map[string]any) gqlResponse {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		return s.post(t, b)
	}
	getHash := func(hash string) gqlResponse {
		e, _ := json.Marshal(ext(hash))
		v, _ := json.Marshal(vars)
		r, _ := s.get(t, url.Values{"extensions": {string(e)}, "variables": {string(v)}})
		return r
	}
	notFound := func(r gqlResponse) {
		t.Helper()
		require.Len(t, r.Errors, 1)
		// Exactly what Apollo's link and urql's persisted exchange look for.
		require.Equal(t, "PersistedQueryNotFound", r.Errors[0].Message)
		require.Equal(t, "PERSISTED_QUERY_NOT_FOUND", r.code())
	}

	notFound(post(map[string]any{"extensions": ext(hash), "variables": vars}))
	notFound(getHash(hash))

	r := post(map[string]any{"query": statusQ, "extensions": ext(hash), "variables": vars})
	require.Empty(t, r.Errors)
	require.Equal(t, "UNVERIFIED", r.Data["verificationStatus"])

	r = post(map[string]any{"extensions": ext(hash), "variables": vars})
	require.Empty(t, r.Errors, "known now")
	require.Equal(t, "UNVERIFIED", r.Data["verificationStatus"])
	r = getHash(hash)
	require.Empty(t, r.Errors, "over GET too")
	require.Equal(t, "UNVERIFIED", r.Data["verificationStatus"])

	r = post(map[string]any{"query": statusQ, "extensions": ext(strings.Repeat("0", 64)), "variables": vars})
	require.Equal(t, "BAD_USER_INPUT", r.code())
	require.Equal(t, "provided APQ hash does not match query", r.Errors[0].Message)
	r = post(map[string]any{"query": statusQ, "extensions": map[string]any{"persistedQuery": map[string]any{"version": 2, "sha256Hash": hash}}, "variables": vars})
	require.Equal(t, "BAD_USER_INPUT", r.code())
}

// sseEvent is one event of a text/event-stream.
type sseEvent struct{ name, data string }

// sseStream is a graphql-sse subscription ("distinct connections").
type sseStream struct {
	t    testing.TB
	resp *http.Response
	r    *bufio.Reader
}

// subscribeSSE opens a subscription over SSE from origin ("" for none)
// and returns the stream, or nil and the status if refused.
func (s *svc) subscribeSSE(t testing.TB, query string, vars map[string]any, origin string) (*sseStream, int) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.url("/query"), strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	return &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}, resp.StatusCode
}

// next reads the next event, skipping comments (keep-alives); ok is false
// when the stream ended.
func (s *sseStream) next() (e sseEvent, ok bool) {
	s.t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err == io.EOF && line == "" {
			return sseEvent{}, false
		}
		require.NoError(s.t, err)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && e.name != "":
			return e, true
		case strings.HasPrefix(line, "event: "):
			e.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			e.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// expect reads a "next" event and returns its status.
func (s *sseStream) expect(status string) {
	s.t.Helper()
	e, ok := s.next()
	require.True(s.t, ok, "the stream ended")
	require.Equal(s.t, "next", e.name, e.data)
	var p struct {
		Data struct {
			VerificationStatus struct{ Status string } `json:"verificationStatus"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	require.NoError(s.t, json.Unmarshal([]byte(e.data), &p))
	require.Empty(s.t, p.Errors)
	require.Equal(s.t, status, p.Data.VerificationStatus.Status)
}

// TestSubscriptionOverSSE: a subscription over SSE sees VERIFIED live and
// completes; a foreign origin is refused as for websockets; at shutdown a
// stream ends without "complete", so the client reconnects.
func TestSubscriptionOverSSE(t *testing.T) {
	t.Parallel()
	s := startInstance(t, instanceOptions{})
	watch := s.register(t, "sse@example.com")
	tok := tokenFrom(t, s.sink.Next(t, 30*time.Second))

	_, status := s.subscribeSSE(t, watchQ, map[string]any{"w": watch}, "https://evil.example")
	require.Equal(t, http.StatusForbidden, status)

	w, _ := s.subscribeSSE(t, watchQ, map[string]any{"w": watch}, publicURL)
	w.expect("UNVERIFIED")
	require.Empty(t, s.gql(t, verifyQ, map[string]any{"t": tok}).Errors)
	w.expect("VERIFIED")
	e, ok := w.next()
	require.True(t, ok)
	require.Equal(t, "complete", e.name)
	_, ok = w.next()
	require.False(t, ok, "the stream ends after complete")

	other := s.register(t, "sse2@example.com")
	w, _ = s.subscribeSSE(t, watchQ, map[string]any{"w": other}, "")
	w.expect("UNVERIFIED")
	go s.stop()
	_, ok = w.next()
	require.False(t, ok, "at shutdown the stream ends without complete")
	testkit.Receive(t, s.stopped, "shutdown")
}

// TestJSONWhenPreferred: urql lists text/event-stream after the JSON
// types in the Accept of every query and mutation; they are answered in
// JSON, as urql prefers, not as an event stream.
func TestJSONWhenPreferred(t *testing.T) {
	t.Parallel()
	s := startInstance(t, instanceOptions{})
	body, err := json.Marshal(map[string]any{"query": registerQ, "variables": map[string]any{"e": "urql@example.com", "p": "correct horse battery"}})
	require.NoError(t, err)
	urql := http.Header{"Accept": {"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"}}
	r, err := s.send(body, urql)
	require.NoError(t, err, "a JSON answer")
	require.Empty(t, r.Errors)
}

// TestBatch: a batch (Apollo's BatchHttpLink) is answered item by item, in
// order, each item under every per-request limit and with its own errors.
func TestBatch(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	watch := s.register(t, "batch@example.com")
	var aliases strings.Builder
	aliases.WriteString("{")
	for i := range 31 {
		aliases.WriteString(" a" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `:verificationStatus(watchToken:"x")`)
	}
	aliases.WriteString("}")
	items := []map[string]any{
		{"query": registerQ, "variables": map[string]any{"e": "batch2@example.com", "p": "correct horse battery"}},
		{"query": statusQ, "variables": map[string]any{"w": watch}},
		{"query": aliases.String()},
		{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("a", 64)}}},
		{"query": statusQ, "variables": map[string]any{"w": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
	}
	body, err := json.Marshal(items)
	require.NoError(t, err)
	status, raw := s.rawPost(t, "application/json", body)
	require.Equal(t, http.StatusOK, status, "%s", raw)
	var results []gqlResponse
	require.NoError(t, json.Unmarshal(raw, &results), "%s", raw)
	require.Len(t, results, len(items))
	require.Empty(t, results[0].Errors)
	require.Equal(t, "UNVERIFIED", results[0].Data["register"].(map[string]any)["status"])
	require.Equal(t, "UNVERIFIED", results[1].Data["verificationStatus"])
	require.Equal(t, "BAD_USER_INPUT", results[2].code(), "the cost limit holds per item")
	require.Contains(t, results[2].Errors[0].Message, "more than the limit")
	require.Equal(t, "PERSISTED_QUERY_NOT_FOUND", results[3].code())
	require.Equal(t, "INVALID_TOKEN", results[4].code())
	s.sink.Next(t, 30*time.Second)
	s.sink.Next(t, 30*time.Second) // the batch's registration was mailed
}
