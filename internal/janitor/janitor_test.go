package janitor

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestRunOnceLogs(t *testing.T) {
	t.Parallel()
	var logs testkit.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	j := New(log, time.Hour,
		Task{Name: "works", Run: func(context.Context) (int, error) { return 3, nil }},
		Task{Name: "fails", Run: func(context.Context) (int, error) { return 0, errors.New("db away") }},
		Task{Name: "idle", Run: func(context.Context) (int, error) { return 0, nil }},
	)
	j.RunOnce(context.Background())
	require.Contains(t, logs.String(), `task=works rows=3`)
	require.Contains(t, logs.String(), `task=fails err="db away"`)
	require.NotContains(t, logs.String(), `task=idle`, "nothing to say when nothing was deleted")
}

func TestRunsAtStartUntilStop(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 10)
	j := New(testkit.Discard(), time.Hour,
		Task{Name: "t", Run: func(context.Context) (int, error) { ran <- struct{}{}; return 0, nil }})
	j.Stop() // before Start: a no-op
	require.NoError(t, j.Start(context.Background()))
	testkit.Receive(t, ran, "the run at start")
	j.Stop()
	j.Stop()
}
