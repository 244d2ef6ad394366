package main

// Tests of the HTTP edge: nothing a client sends is logged, every error
// has its contract code, query limits hold, and the HTTP surface answers
// as documented.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

// TestNothingSentIsLogged sends a password, a verification token and a
// watch token in every malformed shape we could think of (in bodies,
// query strings, paths, headers and websocket frames), at debug level,
// and checks that none of them reaches the log; bodies that are not one
// GraphQL request answer 400 BAD_USER_INPUT without quoting the body.
func TestNothingSentIsLogged(t *testing.T) {
	t.Parallel()
	logs := &testkit.LogBuffer{}
	s := startInstance(t, instanceOptions{log: logs, env: map[string]string{"LOG_LEVEL": "debug"}})

	const password = "Hunter2-SuperSecret-Pw"
	r := s.gql(t, registerQ, map[string]any{"e": "secret@example.com", "p": password})
	require.Empty(t, r.Errors)
	watch := r.Data["register"].(map[string]any)["watchToken"].(string)
	mail := s.sink.Next(t, 30*time.Second)
	token := tokenFrom(t, mail)

	// Step 5: a wrong and the right code, sign-in, a session token as
	// bearer, a bearer that is no token. (The 6-digit code itself is not
	// searched for: six digits can stand in a log line by chance.)
	require.Equal(t, "INVALID_CODE", s.gql(t, codeQ, map[string]any{"w": watch, "c": "999999"}).code())
	receipt := payloadOf(t, s.gql(t, codeQ, map[string]any{"w": watch, "c": codeFrom(t, mail)}), "verifyEmailWithCode").Receipt
	require.Equal(t, "INVALID_CREDENTIALS", s.gql(t, signInQ, map[string]any{"e": "secret@example.com", "p": password + "-typo"}).code())
	r = s.gql(t, signInQ, map[string]any{"e": "secret@example.com", "p": password})
	require.Empty(t, r.Errors)
	session := r.Data["signIn"].(map[string]any)["token"].(string)
	require.Empty(t, s.gqlAs(t, session, changeQ, map[string]any{"e": "secret2@example.com"}).Errors)
	require.Equal(t, "UNAUTHENTICATED", s.gqlAs(t, receipt, changeQ, map[string]any{"e": "secret3@example.com"}).code())
	const badBearer = "Not-A-Token-But-Secret-Bearer"
	require.Equal(t, "UNAUTHENTICATED", s.gqlAs(t, badBearer, confirmQ, map[string]any{"c": "123456"}).code())
	secrets := []string{password, password + "-typo", token, watch, receipt, session, badBearer}
	fill := func(shape string) []byte {
		return []byte(strings.NewReplacer("PASSWORD", password, "TOKEN", token, "WATCH", watch).Replace(shape))
	}
	q := func(query string) string { b, _ := json.Marshal(query); return string(b) }

	decodeFailures := []struct{ name, body string }{
		{"batch with an item not a request", `[{"query":` + q(registerQ) + `,"variables":{"e":"a@example.com","p":"PASSWORD"}},{"query":` + q(verifyQ) + `,"variables":"TOKEN"}]`},
		{"batch of eleven", `[` + strings.Repeat(`{"query":`+q(verifyQ)+`,"variables":{"t":"TOKEN"}},`, 10) + `{"query":` + q(registerQ) + `,"variables":{"e":"a@example.com","p":"PASSWORD"}}]`},
		{"operationName a number", `{"query":` + q(registerQ) + `,"variables":{"e":"b@example.com","p":"PASSWORD"},"operationName":7}`},
		{"operationName an object", `{"query":` + q(statusQ) + `,"operationName":{"w":"WATCH"}}`},
		{"operationName a boolean", `{"query":` + q(statusQ) + `,"variables":{"w":"WATCH"},"operationName":true}`},
		{"variables a string", `{"query":` + q(verifyQ) + `,"variables":"TOKEN PASSWORD"}`},
		{"variables an array", `{"query":` + q(statusQ) + `,"variables":["WATCH"]}`},
		{"variables a number", `{"query":` + q(verifyQ) + `,"variables":5,"extensions":{"t":"TOKEN"}}`},
		{"query a number", `{"query":5,"variables":{"t":"TOKEN","p":"PASSWORD"}}`},
		{"query an object", `{"query":{"text":"PASSWORD"}}`},
		{"query an array", `{"query":["TOKEN"]}`},
		{"extensions a string", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"},"extensions":"PASSWORD"}`},
		{"extensions an array", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"},"extensions":["PASSWORD"]}`},
		{"a JSON string", `"PASSWORD TOKEN"`},
		{"an array of strings", `["TOKEN","WATCH"]`},
		{"null", `null`},
		{"a number", `7`},
		{"truncated JSON", `{"query":` + q(registerQ) + `,"variables":{"e":"c@example.com","p":"PASSWORD"}`},
		{"trailing garbage", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}} PASSWORD`},
		{"not JSON at all", `email=d@example.com&password=PASSWORD&token=TOKEN`},
		{"empty batch", `[]`},
		{"nested batch", `[[{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}]]`},
	}
	for _, tt := range decodeFailures {
		status, body := s.rawPost(t, "application/json", fill(tt.body))
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tt.name, body)
		var resp gqlResponse
		require.NoError(t, json.Unmarshal(body, &resp), tt.name)
		require.Equal(t, "BAD_USER_INPUT", resp.code(), "%s: %s", tt.name, body)
		for _, secret := range secrets {
			require.NotContains(t, string(body), secret, "%s: the answer quotes the body", tt.name)
		}
	}

	// A batch (Apollo's BatchHttpLink) runs each item as a request of its
	// own; the log is checked below.
	status, body := s.rawPost(t, "application/json", fill(`[{"query":`+q(registerQ)+`,"variables":{"e":"batch@example.com","p":"PASSWORD"}},{"query":`+q(verifyQ)+`,"variables":{"t":"TOKEN"}}]`))
	require.Equal(t, http.StatusOK, status, "%s", body)
	var items []gqlResponse
	require.NoError(t, json.Unmarshal(body, &items))
	require.Len(t, items, 2)
	require.Empty(t, items[0].Errors)
	require.Empty(t, items[1].Errors)

	// Other refusals: each answers with a contract or gqlgen code; the log
	// is checked below.
	others := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"wrong content type", "text/plain", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}`, http.StatusBadRequest, "BAD_USER_INPUT"},
		{"form body", "application/x-www-form-urlencoded", `password=PASSWORD`, http.StatusBadRequest, "BAD_USER_INPUT"},
		{"oversized", "application/json", `{"query":"` + strings.Repeat("PASSWORD ", 8000) + `"}`, http.StatusRequestEntityTooLarge, "BAD_USER_INPUT"},
		{"parse error", "application/json", `{"query":` + q(`mutation{register(input:{email:"e@example.com",password:"PASSWORD"}){watchToken`) + `}`, http.StatusUnprocessableEntity, "GRAPHQL_PARSE_FAILED"},
		{"secret as a field name", "application/json", `{"query":"{ Hunter2_SuperSecret_Pw }"}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"variables of the wrong type", "application/json", `{"query":` + q(registerQ) + `,"variables":{"e":{"x":"PASSWORD"},"p":["PASSWORD"]}}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown operation name", "application/json", `{"query":` + q(statusQ) + `,"operationName":"PASSWORD","variables":{"w":"WATCH"}}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown variables", "application/json", `{"query":` + q(statusQ) + `,"variables":{"w":"WATCH","extra":"PASSWORD"}}`, http.StatusOK, ""},
		{"bad email with the password", "application/json", `{"query":` + q(registerQ) + `,"variables":{"e":"not an address PASSWORD","p":"PASSWORD"}}`, http.StatusOK, "BAD_USER_INPUT"},
		{"password as a token", "application/json", `{"query":` + q(verifyQ) + `,"variables":{"t":"PASSWORD"}}`, http.StatusOK, "INVALID_TOKEN"},
		{"token as a watch token", "application/json", `{"query":` + q(statusQ) + `,"variables":{"w":"TOKEN"}}`, http.StatusOK, "INVALID_TOKEN"},
		{"the real thing", "application/json", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}`, http.StatusOK, ""},
	}
	for _, tt := range others {
		status, body := s.rawPost(t, tt.contentType, fill(tt.body))
		require.Equal(t, tt.status, status, "%s: %s", tt.name, body)
		var resp gqlResponse
		require.NoError(t, json.Unmarshal(body, &resp), tt.name)
		require.Equal(t, tt.code, resp.code(), "%s: %s", tt.name, body)
	}

	// In the URL (GET serves queries: a parse error, a mutation refused
	// with 405, a malformed query string) and in headers.
	urls := []struct {
		rawQuery string
		status   int
	}{
		{"query=" + password + "&token=" + token, http.StatusUnprocessableEntity},
		{"query=" + url.QueryEscape(registerQ) + "&variables=" + url.QueryEscape(`{"e":"get@example.com","p":"`+password+`"}`), http.StatusMethodNotAllowed},
		{"query=%zz" + password, http.StatusBadRequest},
		{"variables=" + password, http.StatusBadRequest},
	}
	for _, u := range urls {
		req, err := http.NewRequest(http.MethodGet, s.url("/query?"+u.rawQuery), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.http.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, u.status, resp.StatusCode, u.rawQuery)
	}

	// In the path: a page nobody serves, a link mangled on its way.
	for _, p := range []string{"/" + password, "/verify-email/" + token, "/verify-email%3Ftoken=" + token, "/query/" + password, "/dev/" + watch} {
		resp, err := s.http.Get(s.url(p))
		require.NoError(t, err)
		resp.Body.Close()
	}

	// Over websockets: each shape on a socket of its own, as several of
	// them end the connection.
	frames := []string{
		`{"type":"connection_init","payload":{"authorization":"TOKEN","password":"PASSWORD"}}`,
		`{"type":"PASSWORD"}`,
		`{"type":"subscribe","id":"1","payload":{"query":5,"variables":{"w":"WATCH"}}}`,
		`{"type":"subscribe","id":"2","payload":{"query":` + q(watchQ) + `,"variables":"PASSWORD"}}`,
		`{"type":"subscribe","id":"PASSWORD","payload":{"query":` + q(watchQ) + `,"variables":{"w":"PASSWORD"}}}`,
		`{"type":"subscribe","id":"3","payload":{"query":"subscription { TOKEN }"}}`,
		`{"PASSWORD TOKEN`,
		`{"type":"complete","id":"TOKEN"}`,
	}
	for _, proto := range []string{transportWS, legacyWS} {
		for _, frame := range frames {
			c, resp, err := s.dial(t, proto, http.Header{"Authorization": {"Bearer " + token}})
			require.NoError(t, err)
			resp.Body.Close()
			if !strings.Contains(frame, "connection_init") {
				require.NoError(t, c.WriteJSON(map[string]any{"type": "connection_init"}))
			}
			require.NoError(t, c.WriteMessage(websocket.TextMessage, fill(frame)))
			// The server reads in order: once it answers the close, it
			// has handled the frame (or closed the socket over it).
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					require.True(t, errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF), "%s %s: %v", proto, frame, err)
					break
				}
			}
			c.Close()
		}
	}

	// A normal close, so every debug line of the sockets is written.
	s.stop()
	log := logs.String()
	require.Contains(t, log, `msg="http request"`, "the log is at debug level")
	for _, secret := range secrets {
		require.NotContains(t, log, secret, "a secret reached the log")
	}
	require.NotContains(t, log, "Hunter2_SuperSecret_Pw")
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"TOKEN_TTL": "1h"}})
	s.clock.Freeze() // exact retryAfterSeconds however long the table takes
	watch := s.register(t, "linus@example.com")
	valid := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	unknown := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	long := strings.Repeat("x", 300)

	tests := []struct {
		name  string
		query string
		vars  map[string]any
		code  string
	}{
		{"malformed email", registerQ, map[string]any{"e": "not-an-email", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"email with display name", registerQ, map[string]any{"e": "Bob <bob@example.com>", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"email without domain dot", registerQ, map[string]any{"e": "bob@localhost", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"empty email", registerQ, map[string]any{"e": "", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"oversized email", registerQ, map[string]any{"e": long + "@example.com", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"password of 7", registerQ, map[string]any{"e": "a@example.com", "p": "1234567"}, "BAD_USER_INPUT"},
		{"password of 257", registerQ, map[string]any{"e": "a@example.com", "p": strings.Repeat("p", 257)}, "BAD_USER_INPUT"},
		{"empty token", verifyQ, map[string]any{"t": ""}, "BAD_USER_INPUT"},
		{"oversized token", verifyQ, map[string]any{"t": strings.Repeat("A", 5000)}, "BAD_USER_INPUT"},
		{"unknown token", verifyQ, map[string]any{"t": unknown}, "INVALID_TOKEN"},
		{"malformed token", verifyQ, map[string]any{"t": "not a token!"}, "INVALID_TOKEN"},
		{"watch token as verification token", verifyQ, map[string]any{"t": watch}, "INVALID_TOKEN"},
		{"verification token as watch token", statusQ, map[string]any{"w": valid}, "INVALID_TOKEN"},
		{"unknown watch token", statusQ, map[string]any{"w": unknown}, "INVALID_TOKEN"},
		{"empty watch token", statusQ, map[string]any{"w": ""}, "BAD_USER_INPUT"},
		{"resend malformed email", resendQ, map[string]any{"e": "@@"}, "BAD_USER_INPUT"},
		{"parse error", "mutation {", nil, "GRAPHQL_PARSE_FAILED"},
		{"unknown field", "{ nope }", nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing variable", verifyQ, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"too many mutations", `mutation{a:resendVerificationEmail(email:"a@b.co") b:resendVerificationEmail(email:"a@b.co") c:resendVerificationEmail(email:"a@b.co") d:resendVerificationEmail(email:"a@b.co") e:resendVerificationEmail(email:"a@b.co") f:resendVerificationEmail(email:"a@b.co")}`, nil, "BAD_USER_INPUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.gql(t, tt.query, tt.vars)
			require.Equal(t, tt.code, r.code(), "errors: %+v", r.Errors)
			require.NotContains(t, strings.ToLower(r.Errors[0].Message), "sql")
		})
	}

	t.Run("rate limited", func(t *testing.T) {
		r := s.gql(t, resendQ, map[string]any{"e": "linus@example.com"})
		require.Equal(t, "RATE_LIMITED", r.code())
		require.EqualValues(t, 60, r.Errors[0].Extensions["retryAfterSeconds"])
	})

	t.Run("oversized body", func(t *testing.T) {
		r := s.post(t, []byte(`{"query":"`+strings.Repeat("x", 100<<10)+`"}`))
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})

	t.Run("not JSON", func(t *testing.T) {
		r := s.post(t, []byte(`{"query":`))
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})

	t.Run("subscription with a bad watch token", func(t *testing.T) {
		w := s.subscribe(t, transportWS, unknown)
		w.expectError("INVALID_TOKEN")
	})

	// Last: moves the clock past the token's lifetime.
	t.Run("expired token", func(t *testing.T) {
		s.clock.Advance(time.Hour + time.Second)
		r := s.gql(t, verifyQ, map[string]any{"t": valid})
		require.Equal(t, "TOKEN_EXPIRED", r.code())
		r = s.gql(t, statusQ, map[string]any{"w": watch})
		require.Equal(t, "INVALID_TOKEN", r.code(), "an expired watch token")
	})
}

// appQueries are the requests of the web app; each must pass every limit.
var appQueries = []string{
	registerQ, verifyQ, resendQ, statusQ,
	`mutation($i:RegisterInput!){register(input:$i){watchToken status}}`,
}

// TestQueryLimits: a request does a few dozen lookups at most, and every
// answer to a request of at most 64 KiB stays within a few KiB.
func TestQueryLimits(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	watch := s.register(t, "limits@example.com")

	aliases := func(n int) string {
		var b strings.Builder
		b.WriteString("query($w:String!){")
		for i := range n {
			fmt.Fprintf(&b, " a%d:verificationStatus(watchToken:$w)", i)
		}
		return b.String() + "}"
	}
	r := s.gql(t, aliases(30), map[string]any{"w": watch})
	require.Empty(t, r.Errors, "30 lookups pass")
	require.Len(t, r.Data, 30)
	r = s.gql(t, aliases(50), map[string]any{"w": watch})
	require.Equal(t, "BAD_USER_INPUT", r.code())
	require.Contains(t, r.Errors[0].Message, "costs 500, more than the limit of 300")
	require.Nil(t, r.Data)

	for _, query := range appQueries {
		r := s.gql(t, query, map[string]any{})
		for _, e := range r.Errors {
			require.NotContains(t, e.Message, "smaller requests", query)
		}
	}
	r = s.gql(t, introspectionQuery, nil)
	require.Empty(t, r.Errors, "GraphiQL's introspection query passes")

	// Documents built to make validation or its answer large, each as
	// close to 64 KiB of body as it gets.
	fill := func(unit func(i int) string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; ; i++ {
			u := unit(i)
			if b.Len()+len(u) > 60<<10 {
				break
			}
			b.WriteString(u)
		}
		return b.String() + "}"
	}
	pair := func(n int, unit func(i int) string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			b.WriteString(unit(i))
		}
		return b.String() + "}"
	}
	conflicting := func(i int) string { return fmt.Sprintf(`verificationStatus(watchToken:"%d") `, i) }
	unknown := func(i int) string { return fmt.Sprintf("f%d ", i) }
	same := func(int) string { return "x " }
	tests := []struct {
		name, query string
		code        string
		// errors is the exact count, or 0 for any up to the cap.
		errors int
	}{
		// Every pair conflicts: before the limits, 1,665 of these made a
		// 340 MB answer in 10 s. Now past the parser's token limit.
		{"62 KiB of one field with different arguments", fill(conflicting), "GRAPHQL_PARSE_FAILED", 1},
		{"60 KiB of unknown fields", fill(unknown), "GRAPHQL_PARSE_FAILED", 1},
		{"60 KiB of one token", "{" + strings.Repeat("(", 60<<10) + "}", "GRAPHQL_PARSE_FAILED", 1},
		// Within the token limit, more fields than validation may compare.
		{"2,000 fields", pair(2000, same), "BAD_USER_INPUT", 1},
		{"a million fields from nested fragments", nestedFragments(20), "BAD_USER_INPUT", 1},
		// Within both, validation errors are capped.
		{"400 conflicting fields", pair(400, conflicting), "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1},
		{"400 unknown fields", pair(400, unknown), "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1},
		{"one 60 KiB field name", "{" + strings.Repeat("x", 60<<10) + "}", "GRAPHQL_VALIDATION_FAILED", 1},
		{"a fragment cycle", `{...A} fragment A on Query {...B verificationStatus(watchToken:"x")} fragment B on Query {...A}`, "GRAPHQL_VALIDATION_FAILED", 0},
	}
	for _, tt := range tests {
		body, err := json.Marshal(map[string]any{"query": tt.query})
		require.NoError(t, err)
		require.LessOrEqual(t, len(body), 64<<10, tt.name)
		status, answer := s.rawPost(t, "application/json", body)
		require.Less(t, status, 500, tt.name)
		require.LessOrEqual(t, len(answer), 4<<10, "%s: a %d-byte answer", tt.name, len(answer))
		var resp gqlResponse
		require.NoError(t, json.Unmarshal(answer, &resp), tt.name)
		if tt.errors > 0 {
			require.Len(t, resp.Errors, tt.errors, "%s: %s", tt.name, answer)
		} else {
			require.NotEmpty(t, resp.Errors, tt.name)
			require.LessOrEqual(t, len(resp.Errors), maxValidationErrors+1, tt.name)
		}
		require.Equal(t, tt.code, resp.code(), "%s: %s", tt.name, answer)
		if tt.errors == maxValidationErrors+1 {
			require.Contains(t, resp.Errors[maxValidationErrors].Message, "too many validation errors")
		}
	}
}

// maxValidationErrors mirrors graph's cap, which the answers show.
const maxValidationErrors = 10

// nestedFragments doubles the fields at each level: 2^n fields expanded
// from a few hundred bytes.
func nestedFragments(n int) string {
	var b strings.Builder
	b.WriteString("{...F0} fragment F0 on Query { a:verificationStatus(watchToken:\"x\") }")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i-1, i-1)
	}
	return strings.Replace(b.String(), "...F0}", fmt.Sprintf("...F%d}", n-1), 1)
}

func TestHTTPSurface(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{devOutbox: true, env: map[string]string{"ALLOWED_ORIGINS": "https://app.example.com"}})
	s.register(t, "dev@example.com")

	tests := []struct {
		method, path string
		header       map[string]string
		code         int
		contains     string
	}{
		{"GET", "/healthz", nil, 200, "ok"},
		{"GET", "/readyz", nil, 200, `"database":"ok"`},
		{"GET", "/metrics", nil, 200, "verifier_http_requests_total"},
		{"GET", "/playground", nil, 200, "GraphQL playground"},
		{"GET", "/playground/assets/nope.js", nil, 404, ""},
		{"GET", "/", nil, 200, `<main id="app"`},
		{"GET", "/verify-email?token=x", nil, 200, `<main id="app"`},
		{"GET", "/query", nil, 400, "a GET needs a query parameter"},
		{"GET", "/query?query=%7B__typename%7D", nil, 200, `"__typename":"Query"`},
		{"PUT", "/query", nil, 405, "BAD_USER_INPUT"},
		{"OPTIONS", "/query", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, 204, ""},
		{"OPTIONS", "/query", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "apollographql-client-name,content-type,traceparent"}, 204, ""},
		{"GET", "/nope", nil, 404, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, s.url(tt.path), nil)
		require.NoError(t, err)
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		resp, err := s.http.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, tt.code, resp.StatusCode, "%s %s: %s", tt.method, tt.path, body)
		require.Contains(t, strings.ToLower(string(body)), strings.ToLower(tt.contains), tt.path)
		if tt.method == "OPTIONS" {
			require.Equal(t, "https://app.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
			require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
		}
	}

	// The dev outbox lists the mail with its link and what became of it,
	// as JSON for tests and as a page with the link clickable.
	var link string
	testkit.WaitUntil(t, s.settled, func() bool {
		resp, err := s.http.Get(s.url("/dev/mail.json"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var mails []struct{ To, Subject, Link, State string }
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&mails) != nil || len(mails) == 0 {
			return false
		}
		link = mails[0].Link
		return mails[0].State == "SENT" && regexp.MustCompile(`^http://verifier.test/verify-email\?token=[A-Za-z0-9_-]{43}$`).MatchString(link)
	}, "the verification mail, SENT, on /dev/mail.json")
	resp, err := s.http.Get(s.url("/dev/mail"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `<a href="`+link+`">`)
}

// TestDevMailOffWithSMTP: /dev/mail exists only while the dev outbox is on.
func TestDevMailOffWithSMTP(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	for _, path := range []string{"/dev/mail", "/dev/mail.json"} {
		resp, err := s.http.Get(s.url(path))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}

// introspectionQuery is GraphiQL's.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description
  type { ...TypeRef }
  defaultValue
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`

// TestHTTPUpgradeHeaders: an upgrade to another protocol than websocket
// is ignored (RFC 9110, 7.8), so curl --http2, which asks for h2c on
// every plain-HTTP request, gets its GraphQL answer; a websocket
// handshake that is not a GET answers 405 with the contract's code.
func TestHTTPUpgradeHeaders(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	h2c := map[string]string{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"}
	ws := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	for _, tt := range []struct {
		name, method, path string
		header             map[string]string
		status             int
		code, allow        string
	}{
		{"curl --http2 POST", http.MethodPost, "/query", h2c, http.StatusOK, "", ""},
		{"curl --http2 GET", http.MethodGet, "/query?query=%7B__typename%7D", h2c, http.StatusOK, "", ""},
		{"a websocket handshake over POST", http.MethodPost, "/query", ws, http.StatusMethodNotAllowed, "BAD_USER_INPUT", "GET"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(`{"query":"{__typename}"}`)
			}
			req, err := http.NewRequest(tt.method, s.url(tt.path), body)
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := s.http.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.status, resp.StatusCode, "%s", raw)
			require.Equal(t, tt.allow, resp.Header.Get("Allow"))
			var r gqlResponse
			require.NoError(t, json.Unmarshal(raw, &r), "%s", raw)
			require.Equal(t, tt.code, r.code(), "%s", raw)
			if tt.status == http.StatusOK {
				require.Equal(t, "Query", r.Data["__typename"])
			}
		})
	}
}
