package deadletter

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/migration"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// run runs the command as `verifier dead-letters args...` on the database
// at url.
func run(t *testing.T, url string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	env := map[string]string{"DATABASE_URL": url}
	var out, errOut bytes.Buffer
	status = Main(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return status, out.String(), errOut.String()
}

func TestDeadLettersCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	db, err := database.Open(ctx, url)
	require.NoError(t, err)
	defer db.Close()
	store := delivery.New(db.Ent, nil)

	status, out, _ := run(t, url, "list")
	require.Zero(t, status)
	require.Equal(t, 1, bytes.Count([]byte(out), []byte("\n")), "the header alone:\n%s", out)

	id := uuid.NewString()
	r, err := store.Begin(ctx, delivery.Event{ID: id, Kind: "verification", Address: "gone@example.com", Topic: "user.registered", Payload: []byte(`{}`)})
	require.NoError(t, err)
	require.NoError(t, store.MarkFailed(ctx, r, true, "the mail server refused the recipient: 550 5.1.1 no such user"))

	status, out, _ = run(t, url, "list")
	require.Zero(t, status)
	for _, want := range []string{id, "verification", "gone@example.com", "550 5.1.1 no such user"} {
		require.Contains(t, out, want)
	}

	status, out, _ = run(t, url, "replay", id)
	require.Zero(t, status)
	require.Equal(t, "replayed "+id+"\n", out)
	require.Equal(t, 1, db.Ent.OutboxEvent.Query().CountX(ctx), "back in the outbox")
	_, out, _ = run(t, url, "list")
	require.NotContains(t, out, id)

	status, _, errOut := run(t, url, "replay", id)
	require.Equal(t, 1, status)
	require.Contains(t, errOut, "not a dead letter")

	status, out, _ = run(t, url, "replay", "-all")
	require.Zero(t, status)
	require.Equal(t, "replayed 0 dead letters\n", out)
}

func TestDeadLettersUsage(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	tests := []struct {
		args   []string
		status int
	}{
		{nil, 2},
		{[]string{"-help"}, 0},
		{[]string{"list", "-h"}, 0},
		{[]string{"list", "extra"}, 2},
		{[]string{"list", "-limit", "0"}, 2},
		{[]string{"replay"}, 2},
		{[]string{"replay", "-all", "some-id"}, 2},
		{[]string{"purge"}, 2},
	}
	for _, tt := range tests {
		status, _, errOut := run(t, url, tt.args...)
		require.Equal(t, tt.status, status, "%v", tt.args)
		require.Contains(t, errOut, "verifier dead-letters list", "%v shows the usage", tt.args)
		// A typo is reported before the database is opened: opening
		// creates and migrates it.
		_, err := os.Stat(strings.TrimPrefix(url, "sqlite:"))
		require.ErrorIs(t, err, fs.ErrNotExist, "%v opened the database", tt.args)
	}
	_, _, errOut := run(t, url, "list", "-limit", "-1")
	require.Contains(t, errOut, "-limit wants 1 or more, got -1")
	_, _, errOut = run(t, url, "list", "extra")
	require.Contains(t, errOut, `takes no arguments, got "extra"`)
}

// With MIGRATE=off, as for the service, the command refuses a database
// behind this release instead of migrating it: a deployment that migrates
// as a step of its own keeps it, whichever binary an operator runs.
func TestDeadLettersMigrateOff(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	env := map[string]string{"DATABASE_URL": url, "MIGRATE": "off"}
	var out, errOut bytes.Buffer
	status := Main(context.Background(), []string{"list"}, func(k string) string { return env[k] }, &out, &errOut)
	require.Equal(t, 1, status, "%s%s", out.String(), errOut.String())
	require.Contains(t, errOut.String(), "verifier migrate")

	_, err := database.OpenWith(context.Background(), url, database.Options{CheckSchema: true})
	require.ErrorIs(t, err, migration.ErrBehind, "nothing was applied")
}
