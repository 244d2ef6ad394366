package outbox

import (
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/testkit"
)

// A database outage is one ERROR line per relay, not one per poll: the
// relay polls every second, and every replica's relay would otherwise
// fill the log for as long as the database is away. The repeats go to
// DEBUG but for a reminder at WARN each minute, and the relay says when
// reading the outbox works again.
func TestRelayLogsADatabaseOutageOnce(t *testing.T) {
	t.Parallel()
	dbURL := databasetest.Postgres(t)
	b := setup(t, dbURL)
	var logs testkit.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := NewRelay(b.db, newRecorder(), log, Options{Now: b.clock.Now, Poll: 20 * time.Millisecond})
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(r.Stop)

	// The test's own database refuses connections and its open ones end,
	// as when PostgreSQL restarts or fails over.
	admin := os.Getenv("POSTGRES_URL")
	if admin == "" {
		admin = databasetest.DefaultURL
	}
	adm, err := sql.Open("pgx", admin)
	require.NoError(t, err)
	t.Cleanup(func() { adm.Close() })
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	allow := func(on bool) {
		_, err := adm.Exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS " + map[bool]string{true: "true", false: "false"}[on])
		require.NoError(t, err)
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	_, err = adm.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
	require.NoError(t, err)

	testkit.Eventually(t, func() bool { return logs.Count("picking events to claim failed again") >= 5 }, "the relay kept polling: %s", logs.String())
	require.Zero(t, logs.Count("still fails"))
	// A reminder at WARN once a minute of the relay's clock.
	b.clock.Advance(time.Minute)
	testkit.Eventually(t, func() bool { return logs.Count("still fails") == 1 }, "a reminder after a minute: %s", logs.String())
	allow(true)
	testkit.Eventually(t, func() bool { return logs.Count("picking events to claim works again") == 1 }, "the recovery logged: %s", logs.String())
	require.Equal(t, 1, logs.Count("level=ERROR"), "one ERROR for the outage: %s", logs.String())
}
