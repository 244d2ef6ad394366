package account

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/code"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/signer"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/token"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// pw is a password every check accepts.
const pw = "a good password"

type testBundle struct {
	svc    *Service
	db     *ent.Client
	hub    *hub.Hub
	clock  *testkit.Clock
	signer *signer.Signer
}

// eachDB runs f once per database the service supports; opts adjust the
// service's options.
func eachDB(t *testing.T, f func(t *testing.T, b *testBundle), opts ...func(*Options)) {
	databasetest.Each(t, func(t *testing.T, url string) { f(t, setup(t, url, opts...)) })
}

func setup(t *testing.T, url string, opts ...func(*Options)) *testBundle {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	b := &testBundle{db: db.Ent, hub: hub.New(), clock: testkit.NewFrozenClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	t.Cleanup(b.hub.CloseAll)
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	codes, err := code.NewHasher(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	keys, err := signer.New(context.Background(), signer.Options{
		DB: db.Ent, Issuer: "http://verifier.test", ReceiptTTL: 15 * time.Minute, SessionTTL: time.Hour, Now: b.clock.Now, Log: testkit.Discard(),
	})
	require.NoError(t, err)
	b.signer = keys
	o := Options{
		DB: db.Ent, Dialect: db.Dialect, Seal: box, Codes: codes, Signer: keys,
		// Cheap parameters: these tests are about transactions, not hashing.
		Hasher:         password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 0),
		Hub:            b.hub,
		TokenTTL:       time.Hour,
		ResendCooldown: time.Minute,
		Log:            testkit.Discard(),
		Now:            b.clock.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	b.svc = New(o)
	return b
}

// events returns the payload of every outbox event with topic, oldest first.
func (b *testBundle) events(t *testing.T, topic string) []*ent.OutboxEvent {
	t.Helper()
	evs, err := b.db.OutboxEvent.Query().Where(outboxevent.Topic(topic)).Order(ent.Asc(outboxevent.FieldID)).All(context.Background())
	require.NoError(t, err)
	return evs
}

// requireSuperseded requires an outbox event that ends reg's watchers.
func requireSuperseded(t *testing.T, b *testBundle, reg uuid.UUID, msg string) {
	t.Helper()
	for _, ev := range b.events(t, event.SupersededTopic) {
		var p event.Superseded
		require.NoError(t, json.Unmarshal(ev.Payload, &p))
		if slices.Contains(p.Registrations, reg) {
			return
		}
	}
	require.Fail(t, "no superseded event names the registration", msg)
}

func verificationToken(t *testing.T, ev *ent.OutboxEvent) string {
	t.Helper()
	var p event.VerificationRequested
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	require.NotContains(t, string(ev.Payload), `"token"`, "no token in clear")
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	tok, err := box.Open(p.SealedToken, p.Email)
	require.NoError(t, err)
	return tok
}

// register registers addr and fails the test on error.
func (b *testBundle) register(t *testing.T, addr string) (watch string) {
	t.Helper()
	watch, err := b.svc.Register(context.Background(), RegisterInput{Email: addr, Password: pw})
	require.NoError(t, err)
	return watch
}

// newestToken is the token of the newest verification email.
func (b *testBundle) newestToken(t *testing.T) string {
	t.Helper()
	evs := b.events(t, event.RegisteredTopic)
	require.NotEmpty(t, evs)
	return verificationToken(t, evs[len(evs)-1])
}

// verified registers addr and confirms it.
func (b *testBundle) verified(t *testing.T, addr string) (watch string) {
	t.Helper()
	watch = b.register(t, addr)
	_, err := b.svc.VerifyEmail(context.Background(), b.newestToken(t))
	require.NoError(t, err)
	return watch
}

// registrationOf is the registration behind a watch token.
func (b *testBundle) registrationOf(t *testing.T, watch string) *ent.Registration {
	t.Helper()
	reg, err := b.db.Registration.Query().Where(registration.WatchTokenHash(token.Hash(watch))).Only(context.Background())
	require.NoError(t, err)
	return reg
}

// concurrently runs f(0) … f(n-1) at once and returns their errors.
func concurrently(t testing.TB, n int, f func(i int) error) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range errs {
		wg.Go(func() { errs[i] = f(i) })
	}
	testkit.Wait(t, &wg, "end of %d calls at once", n)
	return errs
}

func TestRegisterStoresOnlyHashes(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch, err := b.svc.Register(ctx, RegisterInput{Email: "Someone@Example.com", Password: "a good password"})
		require.NoError(t, err)
		require.True(t, token.WellFormed(watch))

		u, err := b.db.User.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, "someone@example.com", u.Email)
		require.Contains(t, u.PasswordHash, "$argon2id$")
		require.NotContains(t, u.String(), u.PasswordHash, "password hash is Sensitive")

		evs := b.events(t, event.RegisteredTopic)
		require.Len(t, evs, 1)
		tok := verificationToken(t, evs[0])
		vt, err := b.db.VerificationToken.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, token.Hash(tok), vt.TokenHash)
		reg, err := b.db.Registration.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, token.Hash(watch), reg.WatchTokenHash)
		require.Equal(t, b.clock.Now().Add(time.Hour), reg.ExpiresAt.UTC())
		require.Len(t, reg.CodeHash, 33, "the code only as the seed it is derived from under the key")
		c, ok := b.svc.Codes.Recall(reg.ID, reg.CodeHash)
		require.True(t, ok)
		other, err := code.NewHasher(append(make([]byte, seal.KeyLen-1), 1))
		require.NoError(t, err)
		require.False(t, other.Match(reg.ID, c, reg.CodeHash), "worth nothing without the key")
		require.NotContains(t, reg.String(), reg.CodeHash, "Sensitive")
		require.Equal(t, &reg.ID, vt.RegistrationID)
	})
}

// Concurrent clicks on one link: all succeed, one change, one event, and
// every answer names the same moment (the winner answers from the clock,
// the others from the database, which keeps microseconds on PostgreSQL).
func TestConcurrentVerifyWritesOneEvent(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		b.register(t, "click@example.com")
		tok := b.newestToken(t)
		b.clock.Set(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC))
		answers := make([]Verification, 16)
		errs := concurrently(t, len(answers), func(i int) (err error) {
			answers[i], err = b.svc.VerifyEmail(context.Background(), tok)
			return err
		})
		for i, err := range errs {
			require.NoError(t, err)
			require.True(t, answers[i].VerifiedAt.Equal(answers[0].VerifiedAt), "answer %d: %v, answer 0: %v", i, answers[i].VerifiedAt, answers[0].VerifiedAt)
		}
		require.Len(t, b.events(t, event.VerifiedTopic), 1)
	})
}

// Concurrent resends: exactly one gets through the cooldown.
func TestConcurrentResendsOneEmail(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		b.register(t, "resend@example.com")
		b.clock.Advance(2 * time.Minute)
		errs := concurrently(t, 16, func(int) error { return b.svc.Resend(context.Background(), "resend@example.com") })
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.Equal(t, apperr.RateLimited, apperr.CodeOf(err))
		}
		require.Equal(t, 1, ok)
		require.Len(t, b.events(t, event.RegisteredTopic), 1)
		require.Len(t, b.events(t, event.ResentTopic), 1, "one resend")
	})
}

// Concurrent registrations of one new address: one account, and every
// caller gets a watch token.
func TestConcurrentRegisterOneUser(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		errs := concurrently(t, 8, func(int) error {
			_, err := b.svc.Register(ctx, RegisterInput{Email: "race@example.com", Password: pw})
			return err
		})
		for _, err := range errs {
			require.NoError(t, err)
		}
		n, err := b.db.User.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		n, err = b.db.Registration.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 8, n)
		n, err = b.db.Registration.Query().Where(registration.SupersededAtIsNil()).Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "the newest supersedes the others")
		require.Len(t, b.events(t, event.RegisteredTopic), 1, "one new user")
		require.Len(t, b.events(t, event.RenewedTopic), 1, "and the newest registration's email, waiting for the cooldown")
	})
}

// registration is the registration id behind a watch token.
func (b *testBundle) registration(t *testing.T, watch string) uuid.UUID {
	t.Helper()
	return b.registrationOf(t, watch).ID
}

// A change committed between Watch's subscribe and its read is not missed,
// and a re-check after a broker reconnect finds a change whose event was
// lost.
func TestWatchRecheckFindsMissedChange(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watch := b.register(t, "watch@example.com")
		tok := b.newestToken(t)

		events, err := b.svc.Watch(ctx, watch, false, nil)
		require.NoError(t, err)
		require.Equal(t, &status.Change{Status: status.Unverified, At: b.clock.Now()}, testkit.Receive(t, events, "a status change"))

		b.clock.Advance(time.Minute)
		_, err = b.svc.VerifyEmail(ctx, tok) // its event is never delivered here
		require.NoError(t, err)
		b.hub.RecheckAll()
		c := testkit.Receive(t, events, "a status change")
		require.Equal(t, status.Verified, c.Status)
		require.Equal(t, b.clock.Now(), c.At)
		b.requireReceipt(t, eventReceipt(t, c), "watch@example.com")
		require.Nil(t, testkit.Receive(t, events, "a status change"), "completes after VERIFIED")
		require.Zero(t, b.hub.Len())
	})
}

// Watching a verified address sends VERIFIED and completes at once.
func TestWatchVerifiedCompletesAtOnce(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch := b.verified(t, "done@example.com")
		for _, withDelivery := range []bool{false, true} {
			events, err := b.svc.Watch(ctx, watch, withDelivery, nil)
			require.NoError(t, err)
			require.Equal(t, status.Verified, testkit.Receive(t, events, "a status change").Status)
			require.Nil(t, testkit.Receive(t, events, "a status change"))
		}
		require.Zero(t, b.hub.Len())
	})
}

func TestWatchEndsWithContext(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		watch, err := b.svc.Register(ctx, RegisterInput{Email: "leave@example.com", Password: "a good password"})
		require.NoError(t, err)
		events, err := b.svc.Watch(ctx, watch, true, nil)
		require.NoError(t, err)
		require.NotNil(t, testkit.Receive(t, events, "a status change"))
		cancel()
		require.Nil(t, testkit.Receive(t, events, "a status change"), "closed when the context ends")
		require.Zero(t, b.hub.Len())
	})
}

// fakeDeliveries answers Latest from what set stored, and records
// nothing.
type fakeDeliveries struct{ m sync.Map }

func (f *fakeDeliveries) Queue(context.Context, *ent.Tx, delivery.Event, time.Time) (func(), error) {
	return nil, nil
}

func (f *fakeDeliveries) Forget(context.Context, *ent.Tx, string) error { return nil }

func (f *fakeDeliveries) set(reg uuid.UUID, d *status.Delivery) { f.m.Store(reg, d) }

func (f *fakeDeliveries) Latest(_ context.Context, reg uuid.UUID) (*status.Delivery, error) {
	d, _ := f.m.Load(reg)
	p, _ := d.(*status.Delivery)
	return p, nil
}

// withDelivery adds the latest email's delivery to every event, from the
// records when there is one and QUEUED since the registration otherwise;
// delivery changes reach only the watchers that asked for them.
func TestWatchDelivery(t *testing.T) {
	t.Parallel()
	records := &fakeDeliveries{}
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := b.clock.Now()
		watch, err := b.svc.Register(ctx, RegisterInput{Email: "mail@example.com", Password: "a good password"})
		require.NoError(t, err)
		reg := b.registration(t, watch)

		plain, err := b.svc.Watch(ctx, watch, false, nil)
		require.NoError(t, err)
		require.Nil(t, testkit.Receive(t, plain, "a status change").Delivery)
		live, err := b.svc.Watch(ctx, watch, true, nil)
		require.NoError(t, err)
		require.Equal(t, &status.Change{Status: status.Unverified, At: start,
			Delivery: &status.Delivery{State: status.Queued, At: start}}, testkit.Receive(t, live, "a status change"), "no record yet")

		reason := "mailbox full"
		deferred := status.Delivery{State: status.Deferred, At: start.Add(time.Second), Attempts: 1, Reason: &reason}
		b.hub.PublishDelivery(reg, deferred)
		require.Equal(t, &status.Change{Status: status.Unverified, At: start, Delivery: &deferred}, testkit.Receive(t, live, "a status change"))

		// A later watcher starts from the record.
		records.set(reg, &deferred)
		late, err := b.svc.Watch(ctx, watch, true, nil)
		require.NoError(t, err)
		require.Equal(t, &deferred, testkit.Receive(t, late, "a status change").Delivery)

		sent := status.Delivery{State: status.Sent, At: start.Add(2 * time.Second), Attempts: 2}
		b.hub.PublishDelivery(reg, sent)
		b.hub.PublishDelivery(reg, deferred) // late and out of order: ignored
		require.Equal(t, &sent, testkit.Receive(t, live, "a status change").Delivery)
		require.Equal(t, &sent, testkit.Receive(t, late, "a status change").Delivery)

		b.hub.PublishVerified(reg, hub.Verified{User: *b.registrationOf(t, watch).UserID, Email: "mail@example.com", At: start.Add(time.Minute)})
		for _, ch := range []<-chan *status.Change{plain, live, late} {
			c := testkit.Receive(t, ch, "a status change")
			require.Equal(t, status.Verified, c.Status)
			require.Nil(t, testkit.Receive(t, ch, "a status change"), "completes after VERIFIED")
			if ch == plain {
				require.Nil(t, c.Delivery, "no delivery without withDelivery")
			} else {
				require.Equal(t, &sent, c.Delivery)
			}
		}
	}, func(o *Options) { o.Deliveries = records })
}

// A repeated registration's watcher (the address is taken, verified or
// not) sees what a fresh registration's watcher sees at the same time: the
// same first event, and the delivery of its email (the notice).
func TestWatchRepeatedRegistrationLooksFresh(t *testing.T) {
	t.Parallel()
	for _, verifyFirst := range []bool{false, true} {
		eachDB(t, func(t *testing.T, b *testBundle) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if verifyFirst {
				b.verified(t, "taken@example.com")
			} else {
				b.register(t, "taken@example.com")
			}
			b.clock.Advance(time.Hour)
			repeated, err := b.svc.Register(ctx, RegisterInput{Email: "taken@example.com", Password: "another password"})
			require.NoError(t, err)
			fresh, err := b.svc.Register(ctx, RegisterInput{Email: "new@example.com", Password: "a good password"})
			require.NoError(t, err)

			var firsts []*status.Change
			var chans []<-chan *status.Change
			for _, w := range []string{repeated, fresh} {
				ch, err := b.svc.Watch(ctx, w, true, nil)
				require.NoError(t, err)
				firsts = append(firsts, testkit.Receive(t, ch, "a status change"))
				chans = append(chans, ch)
			}
			require.Equal(t, firsts[0], firsts[1])
			for i, w := range []string{repeated, fresh} {
				sent := status.Delivery{State: status.Sent, At: b.clock.Now().Add(time.Second), Attempts: 1}
				b.hub.PublishDelivery(b.registration(t, w), sent)
				require.Equal(t, &status.Change{Status: status.Unverified, At: b.clock.Now(), Delivery: &sent}, testkit.Receive(t, chans[i], "a status change"))
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{" Mixed.Case@Example.COM ", "mixed.case@example.com", true},
		{"a+tag@sub.example.org", "a+tag@sub.example.org", true},
		{"", "", false},
		{"plain", "", false},
		{"@example.com", "", false},
		{"a@", "", false},
		{"a@b", "", false},
		{"a@.com", "", false},
		{"a@example.com.", "", false},
		{"a@[127.0.0.1]", "", false},
		{"Name <a@example.com>", "", false},
		{"a b@example.com", "", false},
		{"a@example.com\n", "a@example.com", true},
		{strings.Repeat("a", 65) + "@example.com", "", false},
		{"a\xff@example.com", "", false},
		{"a@-example.com", "", false},
		{"a@example-.com", "", false},
		{"a@exa_mple.com", "", false},
		{"a@exa mple.com", "", false},
		{"a@" + strings.Repeat("b", 64) + ".com", "", false},
		{"a@1.2.3.4", "", false},
		{"a@example.123", "", false},
		{"a@" + strings.Repeat("b", 63) + ".com", "a@" + strings.Repeat("b", 63) + ".com", true},
		{"a@123.example.com", "a@123.example.com", true},
		{"a@sub-domain.example.co.uk", "a@sub-domain.example.co.uk", true},
		{"a@B\u00fccher.de", "a@b\u00fccher.de", true},
		{"a@xn--bcher-kva.de", "a@xn--bcher-kva.de", true},
		{"\u00fc@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", "\u00fc@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", true},
		{"\u212a@example.com", "k@example.com", true},              // Kelvin sign: 3 bytes, lower-cased 1
		{strings.Repeat("\u023a", 32) + "@example.com", "", false}, // 64 bytes, 96 once lower-cased
		{"\u202eevil@example.com", "", false},                      // a bidi override
		{"a\u200bb@example.com", "", false},                        // a zero-width space
		{"a\u00adb@example.com", "", false},                        // a soft hyphen
		{"a\ufeffb@example.com", "", false},                        // a byte order mark
		{"a\u0085b@example.com", "", false},                        // a C1 control (next line)
		{"a\u2028b@example.com", "", false},                        // a line separator
		{"a\u00a0b@example.com", "", false},                        // a no-break space
		{"a\ufffdb@example.com", "", false},                        // what JSON makes of "\ud800"
		{"a\u0301@example.com", "a\u0301@example.com", true},       // a combining mark shows
		{"\U0001f600@example.com", "\U0001f600@example.com", true},
	}
	for _, tt := range tests {
		got, err := NormalizeEmail(tt.in)
		if !tt.ok {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		require.Equal(t, tt.want, got)
	}
}

// The length limit is SMTP's, in bytes, and the message says so: 185
// characters, mostly accented, are 365 bytes.
func TestEmailLimitInBytes(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("\u00e9", 60) + "@" + strings.Repeat("\u00e9", 60) + "." + strings.Repeat("\u00e9", 60) + ".de"
	require.Equal(t, 185, utf8.RuneCountInString(in))
	_, err := NormalizeEmail(in)
	require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err))
	require.Contains(t, err.Error(), "at most 254 bytes")
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"1234567", false},
		{"12345678", true},
		{"ééééééé", false}, // 7 characters, 14 bytes
		{"éééééééé", true}, // 8 characters
		{string(make([]rune, 256)), true},
		{string(make([]rune, 257)), false},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", false},
		{"passw\ufffdrd", false}, // what JSON makes of "\ud800" or a byte that is not UTF-8
	}
	for _, tt := range tests {
		err := CheckPassword(tt.in)
		if tt.ok {
			require.NoError(t, err, "%q", tt.in)
		} else {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", tt.in)
		}
	}
}

// receipt mints v's receipt, which must succeed.
func (b *testBundle) receipt(t *testing.T, v Verification) *string {
	t.Helper()
	r, err := b.svc.Receipt(context.Background(), v)
	require.NoError(t, err)
	return &r
}

// eventReceipt mints c's receipt, which must succeed.
func eventReceipt(t *testing.T, c *status.Change) *string {
	t.Helper()
	r, err := c.Receipt(context.Background())
	require.NoError(t, err)
	return r
}

// requireReceipt checks that receipt is a receipt of the signer's for
// email, verified with go-jose against the service's JWKS.
func (b *testBundle) requireReceipt(t *testing.T, receipt *string, email string) map[string]any {
	t.Helper()
	require.NotNil(t, receipt)
	rec := httptest.NewRecorder()
	b.signer.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &set))
	tok, err := jwt.ParseSigned(*receipt, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	require.Len(t, tok.Headers, 1)
	keys := set.Key(tok.Headers[0].KeyID)
	require.Len(t, keys, 1)
	claims := map[string]any{}
	require.NoError(t, tok.Claims(keys[0].Key, &claims))
	require.Equal(t, "receipt", claims["token_use"])
	require.Equal(t, email, claims["email"])
	require.Equal(t, true, claims["email_verified"])
	return claims
}
