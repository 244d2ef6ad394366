package main

// The admin API end to end: over HTTP on /admin/query, against the real
// service, database, broker and SMTP sink.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent/migrate"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/webhook/webhooktest"
)

const testAdminToken = "admin-0123456789abcdefghijklmnopqrstuvwxyz"

// startAdmin starts a service with the admin API on.
func startAdmin(t *testing.T, opts svcOptions) *svc {
	t.Helper()
	if opts.env == nil {
		opts.env = map[string]string{}
	}
	opts.env["ADMIN_TOKEN"] = testAdminToken
	return startService(t, opts)
}

// adminRaw sends a request to /admin/query with Authorization: auth
// (none if empty).
func (s *svc) adminRaw(t testing.TB, method, auth string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url("/admin/query"), bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, raw
}

// admin runs an admin API operation with the token.
func (s *svc) admin(t testing.TB, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	resp, raw := s.adminRaw(t, http.MethodPost, "Bearer "+testAdminToken, body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	out := gqlResponse{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	return out
}

// adminOK runs an operation that must succeed and returns its data.
func (s *svc) adminOK(t testing.TB, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := s.admin(t, query, vars)
	require.Empty(t, r.Errors)
	return r.Data
}

const (
	adminUserByEmailQ = `query($e:String){user(email:$e){id email status createdAt verifiedAt deliveries{state at attempts reason}}}`
	adminUsersQ       = `query($f:Int,$a:String,$s:VerificationStatus,$c:String){users(first:$f,after:$a,status:$s,emailContains:$c){
		edges{cursor node{id email status createdAt}} pageInfo{hasNextPage endCursor} totalCount}}`
	markVerifiedQ = `mutation($u:ID!){markVerified(userId:$u){id status verifiedAt}}`
	deleteUserQ   = `mutation($u:ID!){deleteUser(userId:$u)}`
)

// userID looks the user of email up through the admin API.
func (s *svc) userID(t testing.TB, email string) string {
	t.Helper()
	u := s.adminOK(t, adminUserByEmailQ, map[string]any{"e": email})["user"].(map[string]any)
	return u["id"].(string)
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	introspect := []byte(`{"query":"{__schema{queryType{name}}}"}`)

	off := startService(t, svcOptions{})
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		resp, _ := off.adminRaw(t, method, "Bearer "+testAdminToken, introspect)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "off: as if absent (%s)", method)
	}

	s := startAdmin(t, svcOptions{})
	for _, auth := range []string{"", "Bearer", "Bearer " + testAdminToken[:len(testAdminToken)-1], "Bearer " + testAdminToken + "0", "Basic " + testAdminToken} {
		resp, raw := s.adminRaw(t, http.MethodPost, auth, introspect)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%q", auth)
		require.Equal(t, `Bearer realm="verifier admin"`, resp.Header.Get("WWW-Authenticate"))
		var r gqlResponse
		require.NoError(t, json.Unmarshal(raw, &r), "%s", raw)
		require.Equal(t, "UNAUTHENTICATED", r.code())
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS")
	}
	resp, raw := s.adminRaw(t, http.MethodPost, "Bearer "+testAdminToken, introspect)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.JSONEq(t, `{"data":{"__schema":{"queryType":{"name":"Query"}}}}`, string(raw), "introspection with the token")
	resp, _ = s.adminRaw(t, http.MethodGet, "Bearer "+testAdminToken, nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "POST only")

	// The public endpoint knows nothing of the admin schema.
	r := s.gql(t, `{users{totalCount}}`, nil)
	require.Equal(t, "GRAPHQL_VALIDATION_FAILED", r.code())

	for _, tt := range []struct {
		query string
		vars  map[string]any
	}{
		{`{user{id}}`, nil},
		{`{user(id:"x",email:"a@example.com"){id}}`, nil},
		{`{user(id:"not-a-uuid"){id}}`, nil},
		{`{users(first:0){totalCount}}`, nil},
		{`{users(first:201){totalCount}}`, nil},
		{`{users(after:"bm9wZQ"){totalCount}}`, nil},
		{markVerifiedQ, map[string]any{"u": "00000000-0000-4000-8000-000000000000"}},
		{deleteUserQ, map[string]any{"u": "00000000-0000-4000-8000-000000000000"}},
		{`mutation{resendVerificationEmail(userId:"00000000-0000-4000-8000-000000000000")}`, nil},
		{`mutation{replayDeadLetter(id:"nope")}`, nil},
		{`mutation{replayWebhook(id:"1")}`, nil},
	} {
		require.Equal(t, "BAD_USER_INPUT", s.admin(t, tt.query, tt.vars).code(), tt.query)
	}
	require.Nil(t, s.adminOK(t, adminUserByEmailQ, map[string]any{"e": "nobody@example.com"})["user"])
}

// TestAdminLimits: over HTTP, the admin API's largest request (a whole
// page of users with every field) passes, and so does GraphiQL's
// introspection; copies of the page are refused as an over-cost public
// request is, before anything runs.
func TestAdminLimits(t *testing.T) {
	t.Parallel()
	s := startAdmin(t, svcOptions{})
	s.register(t, "limits@example.com")
	s.sink.Next(t, testkit.Timeout)
	const page = `users(first:200){totalCount pageInfo{hasNextPage endCursor}
		edges{cursor node{id email status createdAt verifiedAt deliveries{state at attempts reason}}}}`
	copies := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " p%d:%s", i, page)
		}
		return b.String() + "}"
	}
	for _, tt := range []struct {
		name, query string
		status      int
		code        string
		message     string
	}{
		{"a whole page", copies(1), http.StatusOK, "", ""},
		{"introspection", introspectionQuery, http.StatusOK, "", ""},
		{"two whole pages", copies(2), http.StatusOK, "BAD_USER_INPUT", "this request costs 6820, more than the limit of 5000"},
		{"a hundred whole pages", copies(100), http.StatusOK, "BAD_USER_INPUT", "this request has more than 400 fields"},
		{"eleven mutations", "mutation{" + strings.Repeat(` replayDeadLetter(id:"x")`, 11) + "}", http.StatusOK, "BAD_USER_INPUT", "at most 10 mutations per request, got 11"},
		{"tokens", "{" + strings.Repeat(" a", 5000) + "}", http.StatusUnprocessableEntity, "GRAPHQL_PARSE_FAILED", "exceeded token limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"query": tt.query})
			require.NoError(t, err)
			resp, raw := s.adminRaw(t, http.MethodPost, "Bearer "+testAdminToken, body)
			require.Equal(t, tt.status, resp.StatusCode, "%s", raw)
			var r gqlResponse
			require.NoError(t, json.Unmarshal(raw, &r), "%s", raw)
			require.Equal(t, tt.code, r.code(), "%s", raw)
			if tt.code == "" {
				require.NotEmpty(t, r.Data)
				return
			}
			require.Contains(t, r.Errors[0].Message, tt.message)
			require.Nil(t, r.Data)
		})
	}
	c := s.adminOK(t, "{"+page+"}", nil)["users"].(map[string]any)
	require.Len(t, c["edges"], 1)
	d := c["edges"].([]any)[0].(map[string]any)["node"].(map[string]any)["deliveries"].([]any)
	require.Len(t, d, 1, "the verification email")
}

// TestAdminUsers pages through 120 users, some sharing a creation time,
// with and without filters, while users are added between pages.
func TestAdminUsers(t *testing.T) {
	t.Parallel()
	dbURL := databasetest.SQLite(t)
	s := startAdmin(t, svcOptions{env: map[string]string{"DATABASE_URL": dbURL}})
	db, err := database.Open(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	// Written straight into the database: 120 argon2id hashes would be
	// the whole test's time, and paging is what is under test.
	// An hour ago: older unverified users are the janitor's
	// (UNVERIFIED_TTL).
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	want := map[string]bool{}
	for i := range 120 {
		email := fmt.Sprintf("user%03d@example.com", i)
		if i%12 == 0 {
			email = fmt.Sprintf("x_y%03d@Alpha.example", i) // 10 with an underscore
			email = strings.ToLower(email)
		}
		c := db.Ent.User.Create().SetEmail(email).SetPasswordHash("x").SetCreatedAt(t0.Add(time.Duration(i/3) * time.Second))
		if i%4 == 0 {
			c.SetStatus(user.StatusVERIFIED).SetVerifiedAt(t0)
		}
		u, err := c.Save(context.Background())
		require.NoError(t, err)
		want[u.ID.String()] = true
	}

	page := func(vars map[string]any) (ids []string, next bool, cursor string, total int) {
		t.Helper()
		c := s.adminOK(t, adminUsersQ, vars)["users"].(map[string]any)
		for _, e := range c["edges"].([]any) {
			ids = append(ids, e.(map[string]any)["node"].(map[string]any)["id"].(string))
		}
		pi := c["pageInfo"].(map[string]any)
		cursor, _ = pi["endCursor"].(string)
		return ids, pi["hasNextPage"].(bool), cursor, int(c["totalCount"].(float64))
	}

	seen := map[string]bool{}
	after := any(nil)
	for n, size := range []int{50, 50, 20} {
		ids, next, cursor, total := page(map[string]any{"a": after})
		require.Len(t, ids, size, "page %d", n)
		require.Equal(t, 120+n, total, "counting those added since")
		require.Equal(t, n < 2, next, "page %d", n)
		for _, id := range ids {
			require.True(t, want[id], "a user of the set")
			require.False(t, seen[id], "no user twice")
			seen[id] = true
		}
		after = cursor
		// A user created between pages comes before them, shifting none.
		_, err := db.Ent.User.Create().SetEmail(fmt.Sprintf("late%d@example.com", n)).SetPasswordHash("x").Save(context.Background())
		require.NoError(t, err)
	}
	require.Len(t, seen, 120, "none missing")

	ids, next, _, total := page(map[string]any{"f": 200, "s": "VERIFIED"})
	require.Equal(t, 30, total)
	require.Len(t, ids, 30)
	require.False(t, next)
	_, _, _, total = page(map[string]any{"s": "UNVERIFIED"})
	require.Equal(t, 93, total, "90 and the 3 added between pages")
	for c, n := range map[string]int{"ALPHA.example": 10, "_": 10, "%": 0, "x_y": 10, "user00": 9} {
		ids, _, _, total := page(map[string]any{"f": 200, "c": c})
		require.Equal(t, n, total, "emailContains %q", c)
		require.Len(t, ids, n)
	}
	ids, next, cursor, total := page(map[string]any{"f": 5, "c": "alpha", "s": "VERIFIED"})
	require.Equal(t, 10, total, "every 12th is also every 4th")
	require.Len(t, ids, 5)
	require.True(t, next)
	ids2, next, _, _ := page(map[string]any{"f": 5, "c": "alpha", "s": "VERIFIED", "a": cursor})
	require.Len(t, ids2, 5)
	require.False(t, next)
	require.NotContains(t, ids2, ids[4])
}

// TestAdminMarkVerified: an operator's verification flips the open
// waiting screen to VERIFIED with a receipt and tells other services, like
// the person's own; a second one changes nothing.
func TestAdminMarkVerified(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		rc := webhooktest.Start(t, nil)
		opts.env = map[string]string{"WEBHOOK_URL": rc.URL, "WEBHOOK_SECRET": testWebhookSecret}
		s := startAdmin(t, opts)
		watch := s.register(t, "grace@example.com")
		s.sink.Next(t, testkit.Timeout)
		w := graphtest.Connect(t, "ws://"+s.addr+"/query", transportWS)
		w.Subscribe("1", `subscription($w:String!){verificationStatus(watchToken:$w){status receipt}}`, map[string]any{"w": watch})
		require.Contains(t, string(w.Next().Payload), `"UNVERIFIED"`)

		id := s.userID(t, "grace@example.com")
		require.Equal(t, publicevent.UserRegisteredType, publicEvent(t, testkit.Receive(t, rc.Got, "registered").Body).Type())
		u := s.adminOK(t, markVerifiedQ, map[string]any{"u": id})["markVerified"].(map[string]any)
		require.Equal(t, "VERIFIED", u["status"])
		require.NotNil(t, u["verifiedAt"])

		var p struct {
			Data struct {
				VerificationStatus struct{ Status, Receipt string } `json:"verificationStatus"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(w.Next().Payload, &p))
		require.Equal(t, "VERIFIED", p.Data.VerificationStatus.Status, "the open screen flips")
		require.NotEmpty(t, p.Data.VerificationStatus.Receipt, "with a receipt")
		require.Equal(t, "complete", w.Next().Type)

		ev := publicEvent(t, testkit.Receive(t, rc.Got, "verified").Body)
		require.Equal(t, publicevent.UserVerifiedType, ev.Type())
		require.Equal(t, id, ev.Subject())

		again := s.adminOK(t, markVerifiedQ, map[string]any{"u": id})["markVerified"].(map[string]any)
		require.Equal(t, u, again, "a verified user is unchanged")
		require.Equal(t, false, s.adminOK(t, `mutation($u:ID!){resendVerificationEmail(userId:$u)}`, map[string]any{"u": id})["resendVerificationEmail"])
		// The next event other services hear is the deletion: the second
		// markVerified published nothing (webhook requests arrive in order
		// of the events here: one event at a time, nothing failing).
		s.adminOK(t, deleteUserQ, map[string]any{"u": id})
		require.Equal(t, publicevent.UserDeletedType, publicEvent(t, testkit.Receive(t, rc.Got, "deleted").Body).Type())
	})
}

func TestAdminResend(t *testing.T) {
	t.Parallel()
	s := startAdmin(t, svcOptions{})
	s.register(t, "hopper@example.com")
	first := s.sink.Next(t, testkit.Timeout)
	id := s.userID(t, "hopper@example.com")
	const resendQ = `mutation($u:ID!){resendVerificationEmail(userId:$u)}`
	r := s.admin(t, resendQ, map[string]any{"u": id})
	require.Equal(t, "RATE_LIMITED", r.code(), "the cooldown holds for operators too")
	s.clock.Advance(time.Minute)
	require.Equal(t, true, s.adminOK(t, resendQ, map[string]any{"u": id})["resendVerificationEmail"])
	second := s.sink.Next(t, testkit.Timeout)
	require.NotEqual(t, tokenFrom(t, first), tokenFrom(t, second), "a fresh link")

	u := s.adminOK(t, adminUserByEmailQ, map[string]any{"e": " Hopper@Example.com "})["user"].(map[string]any)
	require.Equal(t, id, u["id"], "the address is normalised like a registration's")
	sent := func(n int) bool {
		d := s.adminOK(t, adminUserByEmailQ, map[string]any{"e": "hopper@example.com"})["user"].(map[string]any)["deliveries"].([]any)
		for _, e := range d {
			if e.(map[string]any)["state"] != "SENT" {
				return false
			}
		}
		return len(d) == n
	}
	testkit.Eventually(t, func() bool { return sent(2) }, "both emails listed as SENT")

	// A notice to a verified user (a repeated sign-up) is the user's
	// email too, though its registration is a decoy's.
	s.adminOK(t, markVerifiedQ, map[string]any{"u": id})
	s.register(t, "hopper@example.com")
	s.clock.Advance(time.Minute) // the cooldown of the resend
	notice := s.sink.Next(t, testkit.Timeout)
	require.Equal(t, []string{"hopper@example.com"}, notice.To)
	testkit.Eventually(t, func() bool { return sent(3) }, "the notice listed too")
}

// TestAdminListsQueuedEmails: User.deliveries lists every email, one not
// yet picked up by a mailer too: here a repeated sign-up's email, held
// until the address's cooldown ends (as one waiting in a queue no worker
// reads yet would be). A later sign-up that takes the waiting email's
// place leaves one email listed, not two.
func TestAdminListsQueuedEmails(t *testing.T) {
	t.Parallel()
	s := startAdmin(t, svcOptions{})
	s.register(t, "lovelace@example.com")
	s.sink.Next(t, testkit.Timeout)
	states := func() []any {
		d := s.adminOK(t, adminUserByEmailQ, map[string]any{"e": "lovelace@example.com"})["user"].(map[string]any)["deliveries"].([]any)
		out := make([]any, len(d))
		for i, e := range d {
			out[i] = e.(map[string]any)["state"]
		}
		return out
	}
	testkit.Eventually(t, func() bool { return slices.Equal(states(), []any{"SENT"}) }, "the first email SENT")

	s.register(t, "lovelace@example.com") // in the cooldown: waits
	require.Equal(t, []any{"QUEUED", "SENT"}, states(), "the waiting email listed, newest first")
	s.register(t, "lovelace@example.com") // takes the waiting one's place
	require.Equal(t, []any{"QUEUED", "SENT"}, states(), "the replaced email is gone")

	s.clock.Advance(time.Minute)
	last := s.sink.Next(t, testkit.Timeout)
	require.Equal(t, []string{"lovelace@example.com"}, last.To)
	testkit.Eventually(t, func() bool { return slices.Equal(states(), []any{"SENT", "SENT"}) }, "both emails SENT")
}

// TestAdminDeleteUser erases a user whose address went through sign-up,
// verification, a repeated sign-up (a decoy, its notice held by the
// cooldown) and a failed sign-in, and then finds neither its id nor its
// address in any column of any table.
func TestAdminDeleteUser(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, dbURL string) {
		s := startAdmin(t, svcOptions{env: map[string]string{"DATABASE_URL": dbURL}})
		const addr = "erase.me@example.com"
		s.register(t, addr)
		s.sink.Next(t, testkit.Timeout)
		id := s.userID(t, addr)
		s.adminOK(t, markVerifiedQ, map[string]any{"u": id})
		decoy := s.register(t, addr) // the notice waits for the cooldown
		w := s.subscribe(t, transportWS, decoy)
		w.expect("UNVERIFIED")
		r := s.gql(t, `mutation{signIn(email:"erase.me@example.com",password:"wrong password!"){token}}`, nil)
		require.Equal(t, "INVALID_CREDENTIALS", r.code())
		s.register(t, "bystander@example.com")

		require.Equal(t, true, s.adminOK(t, deleteUserQ, map[string]any{"u": id})["deleteUser"])
		w.expectComplete()
		require.Nil(t, s.adminOK(t, adminUserByEmailQ, map[string]any{"e": addr})["user"])
		require.Equal(t, "BAD_USER_INPUT", s.admin(t, deleteUserQ, map[string]any{"u": id}).code())

		db, err := database.Open(context.Background(), dbURL)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		// The deletion's own events go out; then nothing may be left.
		testkit.WaitUntil(t, s.settled, func() bool {
			n, err := db.Ent.OutboxEvent.Query().Count(context.Background())
			return err == nil && n == 0
		}, "the outbox drained")
		for _, needle := range []string{id, addr} {
			require.Empty(t, findEverywhere(t, db, needle), "%s is nowhere", needle)
		}
		require.NotEmpty(t, findEverywhere(t, db, "bystander@example.com"), "the search finds what is there")
	})
}

// TestAdminDeleteUserErasesWebhookDeliveries: with WEBHOOK_URL, the
// webhook deliveries of a deleted user's events (their bodies name the
// address) go with the user, the delivered ones and those still being
// retried alike: a replay of a given-up one must not send the address
// again. Only the deletion's own event names the user's id afterwards.
func TestAdminDeleteUserErasesWebhookDeliveries(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, dbURL string) {
		var refuse atomic.Bool
		rc := webhooktest.Start(t, func(int, *http.Request) int {
			if refuse.Load() {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		s := startAdmin(t, svcOptions{env: map[string]string{"DATABASE_URL": dbURL, "WEBHOOK_URL": rc.URL, "WEBHOOK_SECRET": testWebhookSecret}})
		const addr = "erase.hooks@example.com"
		s.register(t, addr)
		s.sink.Next(t, testkit.Timeout)
		id := s.userID(t, addr)
		typeOf := func(r webhooktest.Request) string {
			var e struct{ Type string }
			require.NoError(t, json.Unmarshal(r.Body, &e))
			return e.Type
		}
		require.Equal(t, publicevent.UserRegisteredType, typeOf(testkit.Receive(t, rc.Got, "the registered event")))
		refuse.Store(true)
		s.adminOK(t, markVerifiedQ, map[string]any{"u": id})
		require.Equal(t, publicevent.UserVerifiedType, typeOf(testkit.Receive(t, rc.Got, "the verified event, refused")))
		refuse.Store(false)

		require.Equal(t, true, s.adminOK(t, deleteUserQ, map[string]any{"u": id})["deleteUser"])
		require.Equal(t, publicevent.UserDeletedType, typeOf(testkit.Receive(t, rc.Got, "the deleted event")))

		db, err := database.Open(context.Background(), dbURL)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		require.Empty(t, findEverywhere(t, db, addr), "the address is nowhere")
		rows, err := db.Ent.WebhookDelivery.Query().All(context.Background())
		require.NoError(t, err)
		for _, r := range rows {
			if bytes.Contains(r.Payload, []byte(id)) {
				require.Equal(t, publicevent.UserDeletedType, r.Type, "only the deletion's event names the user")
			}
		}
	})
}

// findEverywhere lists "table.column" for every column of every table
// that holds needle in some row, as text.
func findEverywhere(t *testing.T, db *database.DB, needle string) []string {
	t.Helper()
	var found []string
	for _, table := range migrate.Tables {
		for _, col := range table.Columns {
			q := fmt.Sprintf(`SELECT count(*) FROM %q WHERE instr(CAST(%q AS TEXT), ?) > 0`, table.Name, col.Name)
			if db.Dialect == dialect.Postgres {
				expr := fmt.Sprintf("%q::text", col.Name)
				if col.Type.String() == "[]byte" {
					expr = fmt.Sprintf("encode(%q, 'escape')", col.Name)
				}
				q = fmt.Sprintf(`SELECT count(*) FROM %q WHERE strpos(%s, $1) > 0`, table.Name, expr)
			}
			rows, err := db.SQL.QueryContext(context.Background(), q, needle)
			require.NoError(t, err, q)
			var n int
			require.True(t, rows.Next())
			require.NoError(t, rows.Scan(&n))
			require.NoError(t, rows.Close())
			if n > 0 {
				found = append(found, table.Name+"."+col.Name)
			}
		}
	}
	return found
}

// TestAdminReplays lists and replays a dead letter and the webhook
// deliveries given up on.
func TestAdminReplays(t *testing.T) {
	t.Parallel()
	var refuseMail, refuseHooks atomic.Bool
	refuseMail.Store(true)
	refuseHooks.Store(true)
	rc := webhooktest.Start(t, func(int, *http.Request) int {
		if refuseHooks.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := startAdmin(t, svcOptions{env: map[string]string{"WEBHOOK_URL": rc.URL, "WEBHOOK_SECRET": testWebhookSecret}})
	s.sink.Refuse(func(to string) error {
		if refuseMail.Load() {
			return mailtest.PermFail
		}
		return nil
	})
	s.register(t, "gone@example.com")
	s.waitMetric(t, `verifier_email_deliveries{state="FAILED"}`, 1)

	const deadQ = `{deadLetters{id kind address attempts reason at}}`
	dead := s.adminOK(t, deadQ, nil)["deadLetters"].([]any)
	require.Len(t, dead, 1)
	d := dead[0].(map[string]any)
	require.Equal(t, "gone@example.com", d["address"])
	require.Equal(t, "verification", d["kind"])
	require.Contains(t, d["reason"], "550 5.1.1 no such user")
	refuseMail.Store(false)
	// The refusal's first trip leaves the outbox once settled; until then
	// a replay answers RATE_LIMITED.
	s.waitMetric(t, `verifier_outbox_backlog`, 0)
	require.Equal(t, true, s.adminOK(t, `mutation($id:ID!){replayDeadLetter(id:$id)}`, map[string]any{"id": d["id"]})["replayDeadLetter"])
	m := s.sink.Next(t, testkit.Timeout)
	require.Equal(t, []string{"gone@example.com"}, m.To)
	s.waitMetric(t, `verifier_email_deliveries{state="FAILED"}`, 0)
	require.Empty(t, s.adminOK(t, deadQ, nil)["deadLetters"])
	require.Equal(t, "BAD_USER_INPUT", s.admin(t, `mutation($id:ID!){replayDeadLetter(id:$id)}`, map[string]any{"id": d["id"]}).code(), "no longer a dead letter")

	// registered and email.failed, refused for a day, are given up on.
	s.clock.Advance(25 * time.Hour)
	const failedQ = `{failedWebhooks{id endpoint type eventId attempts lastError at}}`
	var hooks []any
	testkit.WaitUntil(t, s.settled, func() bool {
		hooks = s.adminOK(t, failedQ, nil)["failedWebhooks"].([]any)
		return len(hooks) == 2
	}, "the webhooks given up on")
	// Given up on: no attempt is in flight, so what the receiver got so far
	// are the refused ones.
	for len(rc.Got) > 0 {
		<-rc.Got
	}
	refuseHooks.Store(false)
	replayed := map[string]bool{}
	for _, h := range hooks {
		h := h.(map[string]any)
		require.Contains(t, []string{publicevent.UserRegisteredType, publicevent.EmailFailedType}, h["type"])
		require.Equal(t, rc.URL, h["endpoint"])
		require.Contains(t, h["lastError"], "503")
		require.Equal(t, true, s.adminOK(t, `mutation($id:ID!){replayWebhook(id:$id)}`, map[string]any{"id": h["id"]})["replayWebhook"])
		replayed[h["eventId"].(string)] = false
	}
	for n := 0; n < len(replayed); {
		r := testkit.Receive(t, rc.Got, "the replayed webhooks")
		if seen, ok := replayed[r.Header.Get("webhook-id")]; ok && !seen {
			replayed[r.Header.Get("webhook-id")] = true
			n++
		}
	}
	testkit.WaitUntil(t, s.settled, func() bool {
		return len(s.adminOK(t, failedQ, nil)["failedWebhooks"].([]any)) == 0
	}, "no failed webhook left")
}
