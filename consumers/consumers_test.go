package consumers

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/status"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

type testBundle struct {
	sink   *mailtest.Sink
	db     *ent.Client
	mailer *Mailer
	counts *counts
	clock  *testkit.Clock
	// handled fires each time the mailer has handled an event.
	handled *testkit.Signal
	// unwatched leaves registrations out of the events register writes,
	// as before they were named: no delivery change is announced.
	unwatched bool
}

type counts struct {
	mu                             sync.Mutex
	sent, failed, retried, skipped int
	problem                        bool
}

func (c *counts) get() counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counts{sent: c.sent, failed: c.failed, retried: c.retried, skipped: c.skipped, problem: c.problem}
}

func quiet() *slog.Logger { return testkit.Discard() }

func setup(t testing.TB) *testBundle {
	t.Helper()
	sink := mailtest.Start(t)
	s, err := mail.NewSMTP(sink.URL(), "Verifier <no-reply@verifier.test>", 8, quiet())
	require.NoError(t, err)
	t.Cleanup(s.Close)
	db, err := database.Open(context.Background(), databasetest.SQLite(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	c := &counts{}
	clock, handled := testkit.NewClock(), testkit.NewSignal()
	inc := func(p *int) func(string) { return func(string) { c.mu.Lock(); *p++; c.mu.Unlock() } }
	return &testBundle{sink: sink, db: db.Ent, counts: c, clock: clock, handled: handled, mailer: &Mailer{
		Sender: s, Seal: testBox(t), Records: delivery.New(db.Ent, clock.Now), Now: clock.Now,
		PublicURL: "https://verify.example.com", Log: quiet(), Handled: handled.Fire,
		Metrics: MailMetrics{
			Sent: inc(&c.sent), Failed: inc(&c.failed), Retried: inc(&c.retried), Skipped: inc(&c.skipped),
			Problem: func(on bool) { c.mu.Lock(); c.problem = on; c.mu.Unlock() },
		},
	}}
}

// record returns the delivery record of msg.
func (b *testBundle) record(t *testing.T, msg broker.Message) *ent.Delivery {
	t.Helper()
	rec, err := b.db.Delivery.Query().Where(entdelivery.EventID(msg.ID)).Only(context.Background())
	require.NoError(t, err)
	return rec
}

func testBox(t testing.TB) *seal.Box {
	t.Helper()
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	return box
}

func verificationMessage(t *testing.T, email string) broker.Message {
	t.Helper()
	return verificationExpiring(t, email, time.Now().Add(time.Hour))
}

func verificationExpiring(t *testing.T, email string, expires time.Time) broker.Message {
	t.Helper()
	body, err := json.Marshal(event.VerificationRequested{
		UserID: uuid.New(), Email: email, SealedToken: testBox(t).Seal("tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD", email),
		ExpiresAt: expires,
	})
	require.NoError(t, err)
	return broker.Message{ID: uuid.NewString(), Topic: event.RegisteredTopic, Body: body, Attempt: 1}
}

// retryDelay asserts that err asks for a retry and returns the delay.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	d, ok := broker.RetryDelay(err)
	require.True(t, ok, "a retry through the broker, not %v", err)
	return d
}

func TestMailerSendsVerification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := verificationMessage(t, "ada@example.com")
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	m := b.sink.Next(t, 10*time.Second)
	require.Equal(t, []string{"ada@example.com"}, m.To)
	require.Equal(t, "no-reply@verifier.test", m.From)
	require.Contains(t, m.Subject, "Verify")
	link := "https://verify.example.com/verify-email?token=tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD"
	require.Contains(t, strings.Split(m.Text, "\n"), link, "the link on a line of its own")
	require.Contains(t, m.HTML, `href="`+link+`"`)
	require.Equal(t, 1, b.counts.get().sent)

	rec := b.record(t, msg)
	require.Equal(t, delivery.Sent, rec.State)
	require.Equal(t, 1, rec.Attempts)
	require.Equal(t, "verification", rec.Kind)
	require.Equal(t, "ada@example.com", rec.Address)
	require.Nil(t, rec.Payload, "nothing to replay once sent")
}

// Values in the HTML part are escaped: nothing in an address can inject
// markup.
func TestMailerEscapesHTML(t *testing.T) {
	t.Parallel()
	m, err := mail.BuiltinTemplates().Verification("id", "x@example.com", mail.VerificationData{Link: `https://v.example/verify-email?token=a"><script>`, Expires: time.Now()})
	require.NoError(t, err)
	require.NotContains(t, m.HTML, "<script>")
}

// A redelivered event (after a crash, or a lost broker connection) whose
// email went out is not sent again.
func TestMailerSendsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := verificationMessage(t, "once@example.com")
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	msg.Redelivered = true
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	b.sink.Next(t, 10*time.Second)
	require.Empty(t, b.sink.Pending())
	require.Equal(t, 1, b.sink.Attempts("once@example.com"))
	require.Equal(t, 1, b.counts.get().skipped)
}

// A 4xx is retried through the broker, backing off, with a record of why;
// the handler itself never waits.
func TestMailerDefersTemporaryFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Refuse(func(string) error { return mailtest.TempFail })
	msg := verificationMessage(t, "slow@example.com")
	// The wait is a quarter of how long the email has been failing, from
	// a second up to a minute: soon after a short hiccup, rarely for an
	// address that keeps declining.
	for i, step := range []struct{ after, want time.Duration }{{0, time.Second}, {20 * time.Second, 5 * time.Second}, {30 * time.Minute, time.Minute}} {
		b.clock.Advance(step.after)
		msg.Attempt = i + 1
		require.Equal(t, step.want, retryDelay(t, b.mailer.Handle(context.Background(), msg)))
		rec := b.record(t, msg)
		require.Equal(t, delivery.Deferred, rec.State)
		require.Equal(t, i+1, rec.Attempts)
		require.Equal(t, "the mail server deferred the message: 451 4.3.0 try again later", rec.Reason)
	}
	require.Equal(t, 3, b.counts.get().retried)

	b.sink.Refuse(nil)
	msg.Attempt = 4
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	require.Equal(t, []string{"slow@example.com"}, b.sink.Next(t, 10*time.Second).To)
	rec := b.record(t, msg)
	require.Equal(t, delivery.Sent, rec.State)
	require.Equal(t, 4, rec.Attempts)
	require.Empty(t, rec.Reason)
}

// While the server is down, mail is retried within two seconds (so the
// backlog goes as soon as it is back), and the sends held back without
// dialing are not counted as attempts.
func TestMailerRetriesSoonWhileUnreachable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Greet(mailtest.ServiceUnavailable)
	first, second := verificationMessage(t, "a@example.com"), verificationMessage(t, "b@example.com")
	require.Equal(t, time.Second, retryDelay(t, b.mailer.Handle(context.Background(), first)))
	require.LessOrEqual(t, retryDelay(t, b.mailer.Handle(context.Background(), second)), 2*time.Second)
	require.Equal(t, 1, b.record(t, first).Attempts)
	rec := b.record(t, second)
	require.Equal(t, delivery.Deferred, rec.State)
	require.Zero(t, rec.Attempts, "held back: no attempt")
	require.Contains(t, rec.Reason, "421")
	// Held back again and again: each try's reservation ends with it, so
	// the next one is not told to wait for another sender.
	for range 2 {
		require.LessOrEqual(t, retryDelay(t, b.mailer.Handle(context.Background(), second)), 2*time.Second)
	}
	require.Equal(t, 1, b.counts.get().retried)
}

// A recipient refused for good becomes a dead letter: a FAILED record that
// keeps the event, and the message is acknowledged, not rejected. A
// redelivery of it does not try again.
func TestMailerDeadLettersRefusedRecipients(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Refuse(func(string) error { return mailtest.PermFail })
	msg := verificationMessage(t, "gone@example.com")
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	require.Equal(t, 1, b.counts.get().failed)
	rec := b.record(t, msg)
	require.Equal(t, delivery.Failed, rec.State)
	require.Equal(t, "the mail server refused the recipient: 550 5.1.1 no such user", rec.Reason)
	require.Equal(t, event.RegisteredTopic, rec.Topic)
	require.NotNil(t, rec.Payload)
	require.JSONEq(t, string(msg.Body), string(rec.Payload))

	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	require.Equal(t, 1, b.sink.Attempts("gone@example.com"))
}

// An event that cannot become an email is a dead letter too.
func TestMailerDeadLettersUnreadableEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	otherKey, err := seal.New([]byte(strings.Repeat("k", seal.KeyLen)))
	require.NoError(t, err)
	foreign, _ := json.Marshal(event.VerificationRequested{Email: "a@b.co", SealedToken: otherKey.Seal("tok", "a@b.co")})
	for _, bad := range []broker.Message{
		{ID: uuid.NewString(), Topic: event.RegisteredTopic, Body: []byte("{not json")},
		{ID: uuid.NewString(), Topic: event.RegisteredTopic, Body: []byte(`{"email":"a@b.co"}`)},
		{ID: uuid.NewString(), Topic: event.RegisteredTopic, Body: foreign},
		{ID: uuid.NewString(), Topic: event.AlreadyRegisteredTopic, Body: []byte(`{}`)},
		{ID: uuid.NewString(), Topic: "something.else", Body: []byte(`{}`)},
	} {
		require.NoError(t, b.mailer.Handle(context.Background(), bad))
		rec := b.record(t, bad)
		require.Equal(t, delivery.Failed, rec.State, string(bad.Body))
		require.NotEmpty(t, rec.Reason)
		require.Equal(t, bad.Body, rec.Payload)
	}
	require.Equal(t, 5, b.counts.get().failed)
	require.Zero(t, b.sink.Sessions())
}

// A server that refuses our sender (530 at MAIL FROM: credentials, a
// relay's settings) is our problem, not the recipient's: the mail waits
// with a long backoff, is never dead-lettered, and the problem is reported
// until mail goes out again.
func TestMailerReportsMisconfiguration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.RefuseMail(func(string) error { return mailtest.AuthRequired })
	msg := verificationMessage(t, "a@example.com")
	for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		msg.Attempt = i + 1
		require.Equal(t, want, retryDelay(t, b.mailer.Handle(context.Background(), msg)))
		require.Equal(t, delivery.Deferred, b.record(t, msg).State, "never FAILED")
	}
	require.ErrorContains(t, b.mailer.Problem(), "530 5.7.0 Authentication required")
	require.True(t, b.counts.get().problem)
	require.Zero(t, b.counts.get().failed)

	b.sink.RefuseMail(nil)
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	require.NoError(t, b.mailer.Problem())
	require.False(t, b.counts.get().problem)
	require.Equal(t, delivery.Sent, b.record(t, msg).State)
}

// Retrying stops being of use when the link in the email has expired.
func TestMailerGivesUpWhenTheLinkExpired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Refuse(func(string) error { return mailtest.TempFail })
	msg := verificationExpiring(t, "late@example.com", time.Now().Add(-time.Second))
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	rec := b.record(t, msg)
	require.Equal(t, delivery.Failed, rec.State)
	require.Contains(t, rec.Reason, "gave up")
	require.Contains(t, rec.Reason, "451")
}

// A notice is retried for noticeMaxAge from when it could first go out:
// one held for a long cooldown is not given up on at its first temporary
// failure.
func TestMailerNoticeDeadlineCountsFromTheCooldownsEnd(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		heldUpTo time.Duration
		age      time.Duration
		want     entdelivery.State
	}{
		{"no cooldown, within a day", 0, 23 * time.Hour, delivery.Deferred},
		{"no cooldown, past a day", 0, 25 * time.Hour, delivery.Failed},
		{"held up to a day, past a day", 24 * time.Hour, 25 * time.Hour, delivery.Deferred},
		{"held up to a day, past two", 24 * time.Hour, 49 * time.Hour, delivery.Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.mailer.HeldUpTo = tt.heldUpTo
			b.sink.Refuse(func(string) error { return mailtest.TempFail })
			body, err := json.Marshal(event.AlreadyRegistered{Email: "owner@example.com"})
			require.NoError(t, err)
			msg := broker.Message{ID: uuid.NewString(), Topic: event.AlreadyRegisteredTopic, Body: body, Attempt: 1, Published: b.clock.Now().Add(-tt.age)}
			err = b.mailer.Handle(context.Background(), msg)
			if tt.want == delivery.Deferred {
				retryDelay(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.want, b.record(t, msg).State)
		})
	}
}

// A handler whose delivery was taken back (its context ended) sends
// nothing: the broker hands the message to someone else.
func TestMailerDoesNotSendAfterItsContextEnded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.mailer.Handle(ctx, verificationMessage(t, "a@example.com"))
	require.Error(t, err)
	_, retry := broker.RetryDelay(err)
	require.False(t, retry, "left to the broker")
	require.Zero(t, b.sink.Sessions())
}

// The delivery's channel dies while the server is taking the message: the
// send is finished and recorded, so the copy the broker hands out again
// finds it SENT instead of mailing it twice.
func TestMailerFinishesASendItBegan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	b.sink.RefuseData(func([]string) error { cancel(); return nil })
	msg := verificationMessage(t, "mid@example.com")
	require.NoError(t, b.mailer.Handle(ctx, msg))
	require.Equal(t, delivery.Sent, b.record(t, msg).State)
	b.sink.RefuseData(nil)
	require.NoError(t, b.mailer.Handle(context.Background(), msg), "the copy")
	b.sink.Collect(t, 1, 10*time.Second)
	require.Empty(t, b.sink.Pending(), "sent once")
	require.Equal(t, 1, b.counts.get().skipped)

}

func TestMailerSendsAlreadyRegisteredNotice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body, _ := json.Marshal(event.AlreadyRegistered{Email: "owner@example.com"})
	require.NoError(t, b.mailer.Handle(context.Background(), broker.Message{ID: uuid.NewString(), Topic: event.AlreadyRegisteredTopic, Body: body}))
	m := b.sink.Next(t, 10*time.Second)
	require.Equal(t, []string{"owner@example.com"}, m.To)
	require.NotContains(t, m.Text, "token=")
}

func TestNotifierFeedsHub(t *testing.T) {
	t.Parallel()
	h := hub.New()
	defer h.CloseAll()
	n := &Notifier{Hub: h}
	u, reg := uuid.New(), uuid.New()
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	s, err := h.Subscribe(context.Background(), hub.Watch{Registration: reg, Delivery: true, Read: func(context.Context) (*status.Change, error) {
		return &status.Change{Status: status.Unverified, At: t0}, nil
	}})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, &status.Change{Status: status.Unverified, At: t0}, testkit.Receive(t, s.C(), "a status change"))

	sent := status.Delivery{State: status.Sent, At: t0.Add(time.Second), Attempts: 1}
	body, _ := json.Marshal(event.DeliveryChanged{Registration: reg, Delivery: sent})
	require.NoError(t, n.Handle(context.Background(), broker.Message{ID: "d", Topic: event.DeliveryChangedTopic, Body: body}))
	require.Equal(t, &status.Change{Status: status.Unverified, At: t0, Delivery: &sent}, testkit.Receive(t, s.C(), "a status change"))

	body, _ = json.Marshal(event.Verified{UserID: u, Registration: reg, Email: "a@example.com", VerifiedAt: t0.Add(time.Minute)})
	require.NoError(t, n.Handle(context.Background(), broker.Message{ID: "v", Topic: event.VerifiedTopic, Body: body}))
	require.Equal(t, &status.Change{Status: status.Verified, At: t0.Add(time.Minute), Delivery: &sent}, testkit.Receive(t, s.C(), "a status change"))

	for _, bad := range []broker.Message{
		{ID: "no topic", Body: []byte("{}")},
		{ID: "no user", Topic: event.VerifiedTopic, Body: []byte("{}")},
		{ID: "no registration verified", Topic: event.VerifiedTopic, Body: []byte(`{"userId":"` + u.String() + `"}`)},
		{ID: "superseded, not JSON", Topic: event.SupersededTopic, Body: []byte("[")},
		{ID: "no registration", Topic: event.DeliveryChangedTopic, Body: []byte(`{"delivery":{"state":"SENT"}}`)},
		{ID: "not JSON", Topic: event.DeliveryChangedTopic, Body: []byte("{")},
	} {
		require.True(t, broker.IsPermanent(n.Handle(context.Background(), bad)), bad.ID)
	}
	require.ElementsMatch(t, []string{event.VerifiedTopic, event.DeliveryChangedTopic, event.SupersededTopic}, n.Queue().Topics)

	// A superseded registration's watcher completes without VERIFIED.
	other := uuid.New()
	s2, err := h.Subscribe(context.Background(), hub.Watch{Registration: other, Read: func(context.Context) (*status.Change, error) {
		return &status.Change{Status: status.Unverified, At: t0}, nil
	}})
	require.NoError(t, err)
	require.Equal(t, status.Unverified, testkit.Receive(t, s2.C(), "a status change").Status)
	body, _ = json.Marshal(event.Superseded{Registrations: []uuid.UUID{other}})
	require.NoError(t, n.Handle(context.Background(), broker.Message{ID: "s", Topic: event.SupersededTopic, Body: body}))
	testkit.Closed(t, s2.C(), "the superseded registration's subscription")
}

// A re-attached queue makes open subscriptions re-read their state.
func TestNotifierRechecksWhenReady(t *testing.T) {
	t.Parallel()
	h := hub.New()
	defer h.CloseAll()
	reads := make(chan struct{}, 2)
	s, err := h.Subscribe(context.Background(), hub.Watch{Registration: uuid.New(), Read: func(context.Context) (*status.Change, error) {
		reads <- struct{}{}
		return &status.Change{Status: status.Unverified, At: time.Now()}, nil
	}})
	require.NoError(t, err)
	defer s.Close()
	testkit.Receive(t, reads, "the first read")
	(&Notifier{Hub: h}).Queue().OnReady()
	testkit.Receive(t, reads, "re-read after OnReady")
}

// A pooled connection the server dropped costs the next email nothing: it
// goes out at its first attempt on a fresh connection.
func TestMailerDeadConnectionCostsNoAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.mailer.Handle(context.Background(), verificationMessage(t, "a@example.com")))
	b.sink.DropConnections() // a restart of the SMTP server
	msg := verificationMessage(t, "b@example.com")
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	b.sink.Collect(t, 2, 10*time.Second)
	require.Equal(t, 1, b.record(t, msg).Attempts)
	require.Zero(t, b.counts.get().retried)
}

// An erasure that lands while the email is with the server (admin
// deleteUser) takes the record the mailer would mark SENT: the mailer
// does not keep trying to write it until shutdown, holding the delivery.
func TestMailerStopsWhenTheRecordIsErased(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := verificationMessage(t, "erased@example.com")
	b.sink.RefuseData(func([]string) error {
		return database.InTx(context.Background(), b.db, func(tx *ent.Tx) error {
			return delivery.Erase(context.Background(), tx, b.clock.Now(), entdelivery.EventID(msg.ID))
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.mailer.Handle(ctx, msg))
	require.NoError(t, ctx.Err(), "returned at once, not when its delivery ended")
	require.Equal(t, delivery.Sent, b.record(t, msg).State)
	require.Empty(t, b.record(t, msg).Address, "still erased")
}
