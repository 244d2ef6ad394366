package mail

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/testkit"
)

// openRecords returns delivery records on a fresh SQLite database.
func openRecords(t *testing.T) *delivery.Store {
	t.Helper()
	db, err := database.Open(context.Background(), databasetest.SQLite(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return delivery.New(db.Ent, nil)
}

func TestDevOutboxKeepsOnceAndTrims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	records := openRecords(t)
	d := NewDevOutbox(records, testkit.Discard(), "http://x/dev/mail")

	require.Error(t, d.Send(ctx, Message{ID: "no record", Subject: "s"}), "the mailer writes the record before sending")
	for i := range 5 {
		m := Message{ID: fmt.Sprint(i), To: "a@example.com", Subject: fmt.Sprint("mail ", i), Text: "t", HTML: "h"}
		_, err := records.Begin(ctx, delivery.Event{ID: m.ID, Kind: "verification", Address: m.To, Topic: "user.registered"})
		require.NoError(t, err)
		require.NoError(t, d.Send(ctx, m))
		require.NoError(t, d.Send(ctx, m), "a redelivery is accepted")
	}
	list, err := d.List(ctx, 100)
	require.NoError(t, err)
	require.Len(t, list, 5, "each message kept once")
	require.Equal(t, "mail 4", list[0].Subject, "newest first")
	require.Equal(t, delivery.Copy{To: "a@example.com", Subject: "mail 4", Text: "t", HTML: "h", State: delivery.Queued, At: list[0].At}, list[0], "a view of the record")

	n, err := d.Trim(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	list, err = d.List(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, []string{"mail 4", "mail 3"}, []string{list[0].Subject, list[1].Subject})
}

// The log says where the mail went without the address: masked, with the
// link to /dev/mail, where the full address and the mail are.
func TestDevOutboxLogsNoAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	records := openRecords(t)
	for i, tt := range []struct{ to, logged string }{
		{"secret.person@example.com", "s…@example.com"},
		{"ünïcode-user@example.org", "ü…@example.org"},
	} {
		var logs testkit.LogBuffer
		d := NewDevOutbox(records, slog.New(slog.NewTextHandler(&logs, nil)), "http://x/dev/mail")
		m := Message{ID: fmt.Sprint(i), To: tt.to, Subject: "Verify", Text: "t", HTML: "h"}
		_, err := records.Begin(ctx, delivery.Event{ID: m.ID, Kind: "verification", Address: m.To, Topic: "user.registered"})
		require.NoError(t, err)
		require.NoError(t, d.Send(ctx, m))
		line := logs.String()
		require.Contains(t, line, "to="+tt.logged, line)
		require.Contains(t, line, "open=http://x/dev/mail", line)
		local := strings.Split(tt.to, "@")[0]
		require.NotContains(t, line, local, "the address in clear")
	}
}
