package janitor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestRunOnceLogs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	j := New(log, time.Hour,
		Task{Name: "works", Run: func(context.Context) (int, error) { return 3, nil }},
		Task{Name: "fails", Run: func(context.Context) (int, error) { return 0, errors.New("db away") }},
		Task{Name: "idle", Run: func(context.Context) (int, error) { return 0, nil }},
	)
	j.RunOnce(context.Background())
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, buf.String(), `task=works rows=3`)
	require.Contains(t, buf.String(), `task=fails err="db away"`)
	require.NotContains(t, buf.String(), `task=idle`, "nothing to say when nothing was deleted")
}

func TestRunsAtStartUntilStop(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 10)
	j := New(testkit.Discard(), time.Hour,
		Task{Name: "t", Run: func(context.Context) (int, error) { ran <- struct{}{}; return 0, nil }})
	j.Stop() // before Start: a no-op
	require.NoError(t, j.Start(context.Background()))
	<-ran
	j.Stop()
	j.Stop()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
