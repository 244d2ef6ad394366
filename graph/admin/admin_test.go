package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/graph/graphtest"
	adminsvc "github.com/verifier/verifier/internal/admin"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// countingDriver is an ent driver that counts the statements sent through
// its Query: every read (and inserts that return what they wrote).
type countingDriver struct {
	dialect.Driver
	queries atomic.Int64
}

func (d *countingDriver) Query(ctx context.Context, query string, args, v any) error {
	d.queries.Add(1)
	return d.Driver.Query(ctx, query, args, v)
}

type testBundle struct {
	db      *ent.Client
	drv     *countingDriver
	handler http.Handler
}

// setup serves the admin API in-process on the database at url, through
// a driver that counts queries. Mutations have no account service.
func setup(t *testing.T, url string) *testBundle {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	// On SQLite db.SQL is the writer connection: everything runs on it,
	// none of it concurrently with db.Ent, which stays unused.
	drv := &countingDriver{Driver: entsql.OpenDB(db.Dialect, db.SQL)}
	client := ent.NewClient(ent.Driver(drv))
	svc := &adminsvc.Service{DB: client, Deliveries: delivery.New(client, nil)}
	return &testBundle{db: client, drv: drv, handler: NewHandler(&Resolver{Admin: svc}, testkit.Discard())}
}

// post sends one request to the admin API and returns its answer and how
// many queries it made.
func (b *testBundle) post(t *testing.T, query string, vars map[string]any) (graphtest.Answer, int) {
	t.Helper()
	before := b.drv.queries.Load()
	r := graphtest.Post(t, b.handler, "/admin/query", query, vars)
	return r, int(b.drv.queries.Load() - before)
}

// fullPage is the admin API's largest legitimate request, with $f 200: a
// whole page of users with every field, their emails, cursors and
// counts.
const (
	fullPage = `users(first:$f){totalCount pageInfo{hasNextPage endCursor}
	edges{cursor node{id email status createdAt verifiedAt deliveries{state at attempts reason}}}}`
	fullPageQ = `query($f:Int){` + fullPage + `}`
)

// delivered is a Delivery as the API answers it.
type delivered struct {
	State    string  `json:"state"`
	At       string  `json:"at"`
	Attempts int     `json:"attempts"`
	Reason   *string `json:"reason"`
}

// seedDeliveries writes n users, each with a registration and 0 to 3
// emails (named by the user, by its registration, or both; some sharing
// a creation time; written out of order), and an email to a decoy
// registration that is nobody's. It returns each user's emails, newest
// first.
func seedDeliveries(t *testing.T, db *ent.Client, n int) map[string][]delivered {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	users := make([]*ent.UserCreate, n)
	for i := range users {
		users[i] = db.User.Create().SetEmail(fmt.Sprintf("u%03d@example.com", i)).SetPasswordHash("x").SetCreatedAt(t0.Add(time.Duration(i) * time.Second))
	}
	us, err := db.User.CreateBulk(users...).Save(ctx)
	require.NoError(t, err)
	reg := func(user *uuid.UUID) *ent.RegistrationCreate {
		return db.Registration.Create().SetNillableUserID(user).SetWatchTokenHash(uuid.NewString()).
			SetPurpose(registration.PurposeSIGNUP).SetEmail("x@example.com").SetExpiresAt(t0.Add(time.Hour))
	}
	regs := make([]*ent.RegistrationCreate, n+1)
	for i, u := range us {
		regs[i] = reg(&u.ID)
	}
	regs[n] = reg(nil)
	rs, err := db.Registration.CreateBulk(regs...).Save(ctx)
	require.NoError(t, err)

	type record struct {
		user    int // -1: the decoy's
		created time.Time
		view    delivered
	}
	var recs []record
	states := []entdelivery.State{delivery.Sent, delivery.Deferred, delivery.Queued, delivery.Failed}
	for i := range us {
		for j := range i % 4 {
			// Newest written first for some, last for others; the third
			// shares the first's creation time.
			created := t0.Add(time.Duration((j%2)*2-1) * time.Duration(i+1) * time.Minute)
			state := states[(i+j)%len(states)]
			v := delivered{State: string(state), At: created.Add(time.Second).Format(time.RFC3339Nano), Attempts: len(recs)}
			if state == delivery.Deferred || state == delivery.Failed {
				v.Reason = new(fmt.Sprintf("reason %d", len(recs)))
			}
			recs = append(recs, record{user: i, created: created, view: v})
		}
	}
	recs = append(recs, record{user: -1, created: t0, view: delivered{State: "SENT", Attempts: len(recs)}})
	creates := make([]*ent.DeliveryCreate, len(recs))
	for k, r := range recs {
		c := db.Delivery.Create().SetEventID(uuid.NewString()).SetKind("verification").SetTopic("t").
			SetState(entdelivery.State(r.view.State)).SetAttempts(r.view.Attempts).SetCreatedAt(r.created).SetUpdatedAt(r.created.Add(time.Second))
		if r.view.Reason != nil {
			c.SetReason(*r.view.Reason)
		}
		switch {
		case r.user < 0:
			c.SetRegistration(rs[n].ID)
		case k%3 == 0:
			c.SetRegistration(rs[r.user].ID)
		case k%3 == 1:
			c.SetUserID(us[r.user].ID)
		default:
			c.SetUserID(us[r.user].ID).SetRegistration(rs[r.user].ID)
		}
		creates[k] = c
	}
	_, err = db.Delivery.CreateBulk(creates...).Save(ctx)
	require.NoError(t, err)

	// Newest first: creation time, then the later written (higher id).
	slices.SortStableFunc(recs, func(a, b record) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return b.view.Attempts - a.view.Attempts
	})
	want := make(map[string][]delivered, n)
	for _, u := range us {
		want[u.ID.String()] = []delivered{}
	}
	for _, r := range recs {
		if r.user >= 0 {
			id := us[r.user].ID.String()
			want[id] = append(want[id], r.view)
		}
	}
	return want
}

// TestPageDeliveries: a page of users with their emails costs the same
// few queries whatever its size, and lists each user's own emails, newest
// first, as the look-up of one user does.
func TestPageDeliveries(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		b := setup(t, url)
		want := seedDeliveries(t, b.db, adminsvc.MaxPage)

		type page struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					ID         string
					Deliveries []delivered
				}
			}
		}
		var full page
		for _, size := range []int{7, adminsvc.MaxPage} {
			r, queries := b.post(t, fullPageQ, map[string]any{"f": size})
			require.Empty(t, r.Errors)
			// Count, page, the page's registrations, their emails.
			require.Equal(t, 4, queries, "a page of %d", size)
			full = page{}
			require.NoError(t, json.Unmarshal(r.Data["users"], &full))
			require.Len(t, full.Edges, size)
		}
		require.Equal(t, adminsvc.MaxPage, full.TotalCount)
		got := map[string][]delivered{}
		for _, e := range full.Edges {
			got[e.Node.ID] = e.Node.Deliveries
		}
		require.Equal(t, want, got)

		r, queries := b.post(t, `{users(first:200){edges{node{id email}}}}`, nil)
		require.Empty(t, r.Errors)
		require.Equal(t, 2, queries, "no emails asked for, none read")
		r, queries = b.post(t, `{users(first:200){...C}} fragment C on UserConnection{edges{...on UserEdge{node{...U}}}}
			fragment U on User{deliveries{state}}`, nil)
		require.Empty(t, r.Errors)
		require.Equal(t, 4, queries, "emails asked for in fragments")

		for _, id := range []string{full.Edges[0].Node.ID, full.Edges[2].Node.ID, full.Edges[3].Node.ID} {
			r, queries := b.post(t, `query($id:ID){user(id:$id){deliveries{state at attempts reason}}}`, map[string]any{"id": id})
			require.Empty(t, r.Errors)
			require.Equal(t, 3, queries, "the user, its registrations, its emails")
			var one struct{ Deliveries []delivered }
			require.NoError(t, json.Unmarshal(r.Data["user"], &one))
			require.Equal(t, want[id], one.Deliveries)
		}
	})
}
