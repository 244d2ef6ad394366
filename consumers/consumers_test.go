package consumers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/smtpsink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testBundle struct {
	sink   *smtpsink.Sink
	smtp   *mail.SMTP
	mailer *Mailer
	counts *counts
}

type counts struct {
	mu                    sync.Mutex
	sent, failed, retried int
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	sink := smtpsink.Start(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := mail.NewSMTP(sink.URL(), "Verifier <no-reply@verifier.test>", 2, log)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	c := &counts{}
	inc := func(p *int) func(string) { return func(string) { c.mu.Lock(); *p++; c.mu.Unlock() } }
	return &testBundle{sink: sink, smtp: s, counts: c, mailer: &Mailer{
		Sender: s, Seal: testBox(t), PublicURL: "https://verify.example.com", Log: log,
		Metrics:   MailMetrics{Sent: inc(&c.sent), Failed: inc(&c.failed), Retried: inc(&c.retried)},
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	}}
}

func testBox(t *testing.T) *seal.Box {
	t.Helper()
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	return box
}

func verificationMessage(t *testing.T, email string) broker.Message {
	t.Helper()
	body, err := json.Marshal(event.VerificationRequested{
		UserID: uuid.New(), Email: email, SealedToken: testBox(t).Seal("tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD", email),
		ExpiresAt: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
	})
	require.NoError(t, err)
	return broker.Message{ID: uuid.NewString(), Topic: event.RegisteredTopic, Body: body}
}

func TestMailerSendsVerification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.mailer.Handle(context.Background(), verificationMessage(t, "ada@example.com")))
	m := b.sink.Next(t, 10*time.Second)
	require.Equal(t, []string{"ada@example.com"}, m.To)
	require.Equal(t, "no-reply@verifier.test", m.From)
	require.Contains(t, m.Subject, "Verify")
	link := "https://verify.example.com/verify-email?token=tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD"
	require.Contains(t, strings.Split(m.Text, "\n"), link, "the link on a line of its own")
	require.Contains(t, m.HTML, `href="`+link+`"`)
	require.Equal(t, 1, b.counts.sent)
}

// Values in the HTML part are escaped: nothing in an address can inject
// markup.
func TestMailerEscapesHTML(t *testing.T) {
	t.Parallel()
	m, err := mail.Verification("id", "x@example.com", `https://v.example/verify-email?token=a"><script>`, time.Now(), false)
	require.NoError(t, err)
	require.NotContains(t, m.HTML, "<script>")
}

func TestMailerRetriesTemporaryFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var refusals int
	var mu sync.Mutex
	b.sink.Refuse(func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if refusals < 3 {
			refusals++
			return smtpsink.TempFail
		}
		return nil
	})
	require.NoError(t, b.mailer.Handle(context.Background(), verificationMessage(t, "slow@example.com")))
	require.Equal(t, []string{"slow@example.com"}, b.sink.Next(t, 10*time.Second).To)
	require.Equal(t, 3, b.counts.retried)
	require.Equal(t, 1, b.counts.sent)
}

// While SMTP keeps failing, the handler holds on until its context ends and
// then hands the message back: never dropped, never dead-lettered.
func TestMailerHandsBackWhenStopped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Refuse(func(string) error { return smtpsink.TempFail })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := b.mailer.Handle(ctx, verificationMessage(t, "down@example.com"))
	require.Error(t, err)
	require.False(t, broker.IsPermanent(err))
	require.Zero(t, b.counts.failed)
}

func TestMailerDeadLettersPermanentFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.Refuse(func(string) error { return smtpsink.PermFail })
	err := b.mailer.Handle(context.Background(), verificationMessage(t, "gone@example.com"))
	require.True(t, broker.IsPermanent(err), "%v", err)
	require.Equal(t, 1, b.counts.failed)

	for _, bad := range []broker.Message{
		{ID: "1", Topic: event.RegisteredTopic, Body: []byte("{not json")},
		{ID: "2", Topic: event.RegisteredTopic, Body: []byte(`{"email":"a@b.co"}`)},
		{ID: "3", Topic: event.AlreadyRegisteredTopic, Body: []byte(`{}`)},
		{ID: "4", Topic: "something.else", Body: []byte(`{}`)},
	} {
		require.True(t, broker.IsPermanent(b.mailer.Handle(context.Background(), bad)), bad.ID)
	}
}

func TestMailerSendsAlreadyRegisteredNotice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body, _ := json.Marshal(event.AlreadyRegistered{Email: "owner@example.com"})
	require.NoError(t, b.mailer.Handle(context.Background(), broker.Message{ID: "n1", Topic: event.AlreadyRegisteredTopic, Body: body}))
	m := b.sink.Next(t, 10*time.Second)
	require.Equal(t, []string{"owner@example.com"}, m.To)
	require.NotContains(t, m.Text, "token=")
}

// Connections are reused: a handshake per email would dominate the time to
// inbox.
func TestSMTPReusesConnections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 5 {
		require.NoError(t, b.mailer.Handle(context.Background(), verificationMessage(t, "reuse@example.com")))
	}
	b.sink.Collect(t, 5, 10*time.Second)
	require.Equal(t, 1, b.sink.Sessions())
}

func TestNotifierFeedsHub(t *testing.T) {
	t.Parallel()
	h := hub.New()
	n := &Notifier{Hub: h}
	u := uuid.New()
	s := h.Subscribe(u)
	defer s.Close()
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	body, _ := json.Marshal(event.Verified{UserID: u, VerifiedAt: at})
	require.NoError(t, n.Handle(context.Background(), broker.Message{ID: "v", Topic: event.VerifiedTopic, Body: body}))
	require.Equal(t, hub.Event{VerifiedAt: at}, <-s.C())
	require.True(t, broker.IsPermanent(n.Handle(context.Background(), broker.Message{ID: "bad", Body: []byte("{}")})))

	n.Queue().OnReady()
	require.Equal(t, hub.Event{Recheck: true}, <-s.C(), "a re-attached queue makes subscriptions re-read")
}
