package mail

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/testkit"
)

func TestDevOutboxKeepsOnceAndTrims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := database.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "t.db"))
	require.NoError(t, err)
	defer db.Close()
	records := delivery.New(db.Ent, nil)
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
